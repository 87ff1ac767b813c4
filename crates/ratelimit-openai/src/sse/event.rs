//! One server-sent event, and how a server writes it.

use super::SseError;

/// The `data` of the event that ends an OpenAI stream.
pub const DONE: &str = "[DONE]";

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SseEvent {
    /// The `event:` type, if the event set one (browsers then call it `message`).
    pub event: Option<String>,
    /// The data: the values of its `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` set in this event, if any (the decoder also keeps the last one seen).
    pub id: Option<String>,
    /// The `retry:` reconnection time in milliseconds set in this event, if any.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An event with only data.
    pub fn data(data: impl Into<String>) -> Self {
        SseEvent {
            data: data.into(),
            ..SseEvent::default()
        }
    }

    /// The `data: [DONE]` event that ends an OpenAI stream.
    pub fn done() -> Self {
        Self::data(DONE)
    }

    /// Whether this is the `[DONE]` sentinel.
    pub fn is_done(&self) -> bool {
        self.data == DONE
    }

    /// The event as the wire carries it, blank line included. The data is split into one
    /// `data:` line per line (any of `\n`, `\r\n`, `\r` separates lines, and a decoder joins
    /// them back with `\n`).
    ///
    /// # Errors
    ///
    /// [`SseError::InvalidField`] if `event` or `id` contains a line break, or `id` a NUL.
    pub fn encode(&self) -> Result<String, SseError> {
        let mut out = String::with_capacity(self.data.len() + 16);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// [`encode`](Self::encode), appending to `out` (left unchanged on error).
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn encode_into(&self, out: &mut String) -> Result<(), SseError> {
        if let Some(event) = &self.event {
            check_line(event, "event")?;
        }
        if let Some(id) = &self.id {
            check_line(id, "id")?;
            if id.contains('\0') {
                return Err(SseError::InvalidField { field: "id" });
            }
        }
        if let Some(event) = &self.event {
            push_field(out, "event", event);
        }
        if let Some(id) = &self.id {
            push_field(out, "id", id);
        }
        if let Some(retry) = self.retry {
            push_field(out, "retry", &retry.to_string());
        }
        for line in lines(&self.data) {
            push_field(out, "data", line);
        }
        out.push('\n');
        Ok(())
    }
}

/// A comment line (`: text`), which clients ignore; servers send them to keep a connection
/// alive.
///
/// # Errors
///
/// [`SseError::InvalidField`] if `text` contains a line break.
pub fn encode_comment(text: &str) -> Result<String, SseError> {
    check_line(text, "comment")?;
    Ok(format!(": {text}\n"))
}

fn check_line(text: &str, field: &'static str) -> Result<(), SseError> {
    if text.contains(['\n', '\r']) {
        Err(SseError::InvalidField { field })
    } else {
        Ok(())
    }
}

/// `field: value\n`. The space after the colon is always written, so a value that starts with a
/// space keeps it (a decoder removes exactly one).
fn push_field(out: &mut String, field: &str, value: &str) {
    out.push_str(field);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

/// The lines of `text`, split at `\r\n`, `\n` or `\r`; an empty text is one empty line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\n', '\r']) {
            Some(end) => {
                let skip = if current[end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[end + skip..]);
                Some(&current[..end])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_fields_and_multi_line_data() {
        let event = SseEvent {
            event: Some("update".into()),
            data: "one\ntwo\r\nthree\rfour".into(),
            id: Some("7".into()),
            retry: Some(1500),
        };
        assert_eq!(
            event.encode().unwrap(),
            "event: update\nid: 7\nretry: 1500\ndata: one\ndata: two\ndata: three\ndata: four\n\n"
        );
        assert_eq!(SseEvent::data("").encode().unwrap(), "data: \n\n");
        assert_eq!(
            SseEvent::data("a\n").encode().unwrap(),
            "data: a\ndata: \n\n"
        );
        assert_eq!(SseEvent::done().encode().unwrap(), "data: [DONE]\n\n");
    }

    #[test]
    fn refuses_fields_it_cannot_carry() {
        let bad_event = SseEvent {
            event: Some("a\nb".into()),
            ..SseEvent::data("x")
        };
        assert_eq!(
            bad_event.encode(),
            Err(SseError::InvalidField { field: "event" })
        );
        let bad_id = SseEvent {
            id: Some("a\0b".into()),
            ..SseEvent::data("x")
        };
        assert_eq!(bad_id.encode(), Err(SseError::InvalidField { field: "id" }));
        assert_eq!(encode_comment("keep-alive").unwrap(), ": keep-alive\n");
        assert_eq!(
            encode_comment("a\rb"),
            Err(SseError::InvalidField { field: "comment" })
        );
    }
}
