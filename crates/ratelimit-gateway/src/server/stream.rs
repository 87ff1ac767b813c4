//! Streamed answers: passed on chunk by chunk while their usage is watched, and settled when they
//! end. When the gateway itself asked for the usage (`stream_options.include_usage`, added to a
//! request without it), the usage is taken out again so the client gets the stream it asked for.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use ratelimit_client::proxy::{Counted, UsageWatch, usage_of};
use ratelimit_limiter::Permit;
use ratelimit_openai::sse::{SseDecoder, SseEvent};
use serde_json::Value;

use super::proxy::Settlement;

/// Turns on `stream_options.include_usage` in a streamed request's body unless the client did.
/// Returns whether it did (the client then must not see the usage).
pub(super) fn request_usage(body: &mut serde_json::Map<String, Value>) -> bool {
    let asked = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    if asked {
        return false;
    }
    let options = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !options.is_object() {
        *options = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(options) = options {
        options.insert("include_usage".into(), Value::Bool(true));
    }
    true
}

/// How a stream's usage is read.
pub(super) enum Watch {
    /// The client asked for the usage: the bytes pass unchanged.
    Pass(UsageWatch),
    /// The gateway asked for it: the events are decoded, the usage taken out of them (a chunk
    /// that only carried it is dropped) and the rest written back.
    Strip(Stripper),
}

impl Watch {
    /// The bytes to pass on for `bytes` from the upstream (possibly none).
    fn feed(&mut self, bytes: Bytes) -> Bytes {
        match self {
            Self::Pass(watch) => {
                watch.feed(&bytes);
                bytes
            }
            Self::Strip(stripper) => stripper.feed(&bytes),
        }
    }

    fn usage(&self) -> Option<Counted> {
        match self {
            Self::Pass(watch) => watch.usage(),
            Self::Strip(stripper) => stripper.usage,
        }
    }
}

/// Takes the usage out of an event stream, keeping the last one it reported.
#[derive(Default)]
pub(super) struct Stripper {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    usage: Option<Counted>,
}

impl Stripper {
    /// The events these bytes complete, without their usage, as the wire carries them.
    fn feed(&mut self, bytes: &[u8]) -> Bytes {
        // An oversized event is dropped by the decoder; the others still come out.
        let _oversized = self.decoder.feed(bytes, &mut self.events);
        let mut out = String::new();
        for event in std::mem::take(&mut self.events) {
            if let Some(event) = self.strip(event) {
                // The fields come from a decoder, so they hold no line breaks: this cannot fail.
                let _ = event.encode_into(&mut out);
            }
        }
        Bytes::from(out)
    }

    /// The event without its `usage` field (noted), or nothing when it only carried the usage.
    fn strip(&mut self, mut event: SseEvent) -> Option<SseEvent> {
        if event.is_done() || !event.data.contains("\"usage\"") {
            return Some(event);
        }
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(&event.data) else {
            return Some(event);
        };
        let usage = chunk.remove("usage")?;
        let usage = match usage {
            Value::Null => None,
            _ => usage_of(event.data.as_bytes()),
        };
        if let Some(usage) = usage {
            self.usage = Some(usage);
        }
        let no_choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if no_choices && usage.is_some() {
            return None;
        }
        event.data = Value::Object(chunk).to_string();
        Some(event)
    }
}

/// An event stream passed on chunk by chunk; when it ends, its grants are settled to the usage
/// of its final chunk before the end is reported. Dropped before its end (the caller went away),
/// the grants keep their estimates.
pub(super) struct SettlingStream {
    inner: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    watch: Watch,
    pending: Option<(Settlement, Vec<Permit>)>,
    settling: Option<BoxFuture<'static, ()>>,
}

impl SettlingStream {
    /// Passes on `answer`'s body; `strip` when the gateway asked for the usage itself.
    pub(super) fn new(
        answer: reqwest::Response,
        strip: bool,
        settle: Settlement,
        permits: Vec<Permit>,
    ) -> Self {
        Self {
            inner: answer.bytes_stream().boxed(),
            watch: if strip {
                Watch::Strip(Stripper::default())
            } else {
                Watch::Pass(UsageWatch::new())
            },
            pending: Some((settle, permits)),
            settling: None,
        }
    }
}

impl Stream for SettlingStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(settling) = &mut this.settling {
                ready!(settling.as_mut().poll(cx));
                this.settling = None;
                return Poll::Ready(None);
            }
            if this.pending.is_none() {
                return Poll::Ready(None);
            }
            match ready!(this.inner.poll_next_unpin(cx)) {
                Some(Ok(bytes)) => {
                    let out = this.watch.feed(bytes);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Some(Err(e)) => {
                    this.pending = None;
                    return Poll::Ready(Some(Err(std::io::Error::other(e.without_url()))));
                }
                None => {
                    if let Some((settle, permits)) = this.pending.take() {
                        let usage = this.watch.usage();
                        this.settling = Some(Box::pin(settle.run(permits, usage)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> serde_json::Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn usage_is_requested_unless_the_client_did() {
        let mut plain = body(r#"{"model":"m","stream":true}"#);
        assert!(request_usage(&mut plain));
        assert_eq!(plain["stream_options"]["include_usage"], true);

        let mut other = body(r#"{"stream_options":{"include_obfuscation":false}}"#);
        assert!(request_usage(&mut other));
        assert_eq!(other["stream_options"]["include_usage"], true);
        assert_eq!(other["stream_options"]["include_obfuscation"], false);

        let mut off = body(r#"{"stream_options":{"include_usage":false}}"#);
        assert!(request_usage(&mut off));
        assert_eq!(off["stream_options"]["include_usage"], true);

        let mut null = body(r#"{"stream_options":null}"#);
        assert!(request_usage(&mut null));
        assert_eq!(null["stream_options"]["include_usage"], true);

        let mut asked = body(r#"{"stream_options":{"include_usage":true}}"#);
        assert!(!request_usage(&mut asked));
    }

    #[test]
    fn the_usage_is_taken_out_wherever_the_stream_is_split() {
        // As OpenAI streams with include_usage: `"usage": null` on every chunk, then a chunk
        // with no choices and the usage; a content chunk that mentions "usage" stays whole.
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\"\"}}],\"usage\":null}\n\n\
            data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n\
            data: [DONE]\n\n";
        let expected = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\"\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
            data: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut stripper = Stripper::default();
            let mut out = Vec::new();
            out.extend_from_slice(&stripper.feed(&stream.as_bytes()[..split]));
            out.extend_from_slice(&stripper.feed(&stream.as_bytes()[split..]));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "split at {split}"
            );
            assert_eq!(
                stripper.usage,
                Some(Counted {
                    prompt: 7,
                    completion: 3
                })
            );
        }
    }

    #[test]
    fn usage_on_a_chunk_with_choices_is_removed_and_the_chunk_kept() {
        let mut stripper = Stripper::default();
        let out = stripper.feed(
            b"data: {\"choices\":[{\"text\":\"x\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n",
        );
        assert_eq!(&out[..], b"data: {\"choices\":[{\"text\":\"x\"}]}\n\n");
        assert_eq!(stripper.usage.map(|u| u.completion), Some(1));
    }
}
