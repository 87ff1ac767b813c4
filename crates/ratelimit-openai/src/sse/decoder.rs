//! The incremental server-sent-events decoder.

use super::{SseError, SseEvent};

/// The default bound on one event (its data plus the line being read), in bytes: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes a `text/event-stream` incrementally: feed it the bytes as they arrive, split
/// anywhere (inside a line, between `\r` and `\n`, inside a UTF-8 character), and it yields the
/// same events as for the whole stream at once.
///
/// It follows the WHATWG parsing rules: lines end at `\r\n`, `\n` or `\r`; a blank line
/// dispatches the event; `data:` values are joined with `\n`; one space after the colon is
/// removed; lines starting with `:` are comments; a line without a colon is a field with an
/// empty value; unknown fields are ignored; `id` values containing NUL and non-numeric `retry`
/// values are ignored; an event with no `data` line is not dispatched; a byte-order mark at the
/// start is skipped. Invalid UTF-8 is replaced with U+FFFD, so no input makes it fail or panic;
/// memory is bounded by [`with_max_event_bytes`](Self::with_max_event_bytes).
#[derive(Debug, Clone)]
pub struct SseDecoder {
    /// The bytes of the line being read (empty while dropping an oversized event).
    line: Vec<u8>,
    /// Bytes seen on the current line, kept or not: 0 means the line is blank so far.
    line_len: usize,
    /// The last byte seen was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    /// No line has ended yet: the byte-order mark may still be at its start.
    first_line: bool,
    /// Whether the current (undispatched) event has had a field line.
    in_event: bool,
    /// Dropping the rest of an oversized event, up to its blank line.
    oversized: bool,
    data: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    last_event_id: Option<String>,
    reconnection_time: Option<u64>,
    max_event_bytes: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder that accepts events up to [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that drops (and reports) any event whose data plus current line would exceed
    /// `limit` bytes.
    pub fn with_max_event_bytes(limit: usize) -> Self {
        SseDecoder {
            line: Vec::new(),
            line_len: 0,
            after_cr: false,
            first_line: true,
            in_event: false,
            oversized: false,
            data: String::new(),
            event: None,
            id: None,
            retry: None,
            last_event_id: None,
            reconnection_time: None,
            max_event_bytes: limit,
        }
    }

    /// Decodes the next bytes of the stream, appending every event they complete to `out`.
    ///
    /// # Errors
    ///
    /// [`SseError::EventTooLarge`] if an event outgrew the limit. The whole chunk is still
    /// decoded: `out` holds every other event, the oversized one is dropped up to its blank line,
    /// and the decoder goes on.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut error = None;
        let mut rest = chunk;
        while let Some((&first, tail)) = rest.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                rest = tail;
                continue;
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.push_bytes(&rest[..end], &mut error);
                    self.after_cr = rest[end] == b'\r';
                    self.end_line(out);
                    rest = &rest[end + 1..];
                }
                None => {
                    self.push_bytes(rest, &mut error);
                    rest = &[];
                }
            }
        }
        error.map_or(Ok(()), Err)
    }

    /// Ends the stream.
    ///
    /// # Errors
    ///
    /// [`SseError::Truncated`] if the stream ended inside an event (fields without the blank
    /// line that dispatches them); that event is dropped, as the WHATWG rules require. A
    /// trailing comment is not an error. The decoder is then ready for a new stream.
    pub fn finish(&mut self) -> Result<(), SseError> {
        let partial_field = self.line_len > 0 && self.line.first() != Some(&b':');
        let truncated = self.in_event || self.oversized || partial_field;
        *self = Self::with_max_event_bytes(self.max_event_bytes);
        if truncated {
            Err(SseError::Truncated)
        } else {
            Ok(())
        }
    }

    /// The last `id` the stream set (kept across events, as `Last-Event-ID` would send it).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The last reconnection time (`retry:`, milliseconds) the stream set.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    fn push_bytes(&mut self, bytes: &[u8], error: &mut Option<SseError>) {
        if bytes.is_empty() {
            return;
        }
        self.line_len = self.line_len.saturating_add(bytes.len());
        if self.oversized {
            return;
        }
        let size = self.line.len() + self.data.len() + bytes.len();
        if size > self.max_event_bytes {
            self.oversized = true;
            self.line.clear();
            self.reset_event();
            error.get_or_insert(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let blank = self.line_len == 0;
        self.line_len = 0;
        if self.oversized {
            // Drop the oversized event's lines up to the blank line that ends it.
            self.oversized = !blank;
            self.first_line = false;
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        let start = if std::mem::take(&mut self.first_line) && line.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        if line.len() == start {
            self.dispatch(out);
        } else if line[start] != b':' {
            self.field(&String::from_utf8_lossy(&line[start..]));
        }
        line.clear();
        self.line = line;
    }

    fn field(&mut self, text: &str) {
        self.in_event = true;
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (text, ""),
        };
        match name {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.id = Some(value.to_owned());
                self.last_event_id = Some(value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(millis) = value.parse() {
                    self.retry = Some(millis);
                    self.reconnection_time = Some(millis);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        self.in_event = false;
        if self.data.is_empty() {
            self.reset_event();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the `\n` after the last data line
        out.push(SseEvent {
            event: self.event.take(),
            data,
            id: self.id.take(),
            retry: self.retry.take(),
        });
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.event = None;
        self.id = None;
        self.retry = None;
        self.in_event = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        decoder.feed(input, &mut out).unwrap();
        out
    }

    #[test]
    fn data_lines_join_with_newlines_and_lose_one_space() {
        let events = decode(b"data: a\ndata:  b\ndata:c\ndata\n\n");
        assert_eq!(events, vec![SseEvent::data("a\n b\nc\n")]);
    }

    #[test]
    fn every_line_ending_works() {
        let expected = vec![SseEvent::data("x\ny"), SseEvent::data("z")];
        assert_eq!(decode(b"data: x\ndata: y\n\ndata: z\n\n"), expected);
        assert_eq!(
            decode(b"data: x\r\ndata: y\r\n\r\ndata: z\r\n\r\n"),
            expected
        );
        assert_eq!(decode(b"data: x\rdata: y\r\rdata: z\r\r"), expected);
    }

    #[test]
    fn comments_unknown_fields_and_empty_events_are_skipped() {
        let events = decode(b": keep-alive\nfoo: bar\n\nevent: ping\n\ndata: kept\n\n");
        assert_eq!(events, vec![SseEvent::data("kept")]);
    }

    #[test]
    fn fields_are_read() {
        let events = decode(b"event: update\nid: 42\nretry: 3000\ndata: {}\n\ndata: next\n\n");
        assert_eq!(
            events[0],
            SseEvent {
                event: Some("update".into()),
                data: "{}".into(),
                id: Some("42".into()),
                retry: Some(3000),
            }
        );
        assert_eq!(events[1], SseEvent::data("next"));
    }

    #[test]
    fn last_event_id_and_reconnection_time_persist() {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        decoder
            .feed(
                b"id: 1\nretry: 250\ndata: a\n\nid: 2\0x\nretry: 1s\ndata: b\n\n",
                &mut out,
            )
            .unwrap();
        assert_eq!(out[1].id, None);
        assert_eq!(out[1].retry, None);
        assert_eq!(decoder.last_event_id(), Some("1"));
        assert_eq!(decoder.reconnection_time(), Some(250));
    }

    #[test]
    fn a_leading_bom_is_skipped_even_when_split() {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        decoder.feed(b"\xEF\xBB", &mut out).unwrap();
        decoder.feed(b"\xBFdata: a\n\n", &mut out).unwrap();
        assert_eq!(out, vec![SseEvent::data("a")]);
        // Only at the start of the stream.
        assert_eq!(decode(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n").len(), 1);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(
            decode(b"data: a\xFFb\n\n"),
            vec![SseEvent::data("a\u{FFFD}b")]
        );
    }

    #[test]
    fn a_cr_at_a_chunk_end_does_not_double_the_line_end() {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        decoder.feed(b"data: a\r", &mut out).unwrap();
        decoder.feed(b"\ndata: b\r", &mut out).unwrap();
        decoder.feed(b"\n\r", &mut out).unwrap();
        decoder.feed(b"\n", &mut out).unwrap();
        assert_eq!(out, vec![SseEvent::data("a\nb")]);
    }

    #[test]
    fn finish_reports_a_truncated_event() {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        decoder.feed(b"data: a\n\ndata: b\n", &mut out).unwrap();
        assert_eq!(decoder.finish(), Err(SseError::Truncated));
        assert_eq!(out, vec![SseEvent::data("a")]);

        decoder.feed(b"data: a\n\ndata: par", &mut out).unwrap();
        assert_eq!(decoder.finish(), Err(SseError::Truncated));

        decoder
            .feed(b"data: a\n\n: trailing comment", &mut out)
            .unwrap();
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn an_oversized_event_is_dropped_and_decoding_goes_on() {
        let mut decoder = SseDecoder::with_max_event_bytes(16);
        let mut out = Vec::new();
        let result = decoder.feed(
            b"data: small\n\ndata: 0123456789\ndata: 0123456789\nid: x\n\ndata: after\n\n",
            &mut out,
        );
        assert_eq!(result, Err(SseError::EventTooLarge { limit: 16 }));
        assert_eq!(out, vec![SseEvent::data("small"), SseEvent::data("after")]);
        assert_eq!(decoder.finish(), Ok(()));

        // A single endless line is bounded too, whatever the chunking.
        let mut decoder = SseDecoder::with_max_event_bytes(16);
        let mut out = Vec::new();
        let mut errors = 0;
        for _ in 0..100 {
            errors += usize::from(decoder.feed(b"data: xxxxxxxxxx", &mut out).is_err());
        }
        assert_eq!(errors, 1);
        assert!(decoder.line.len() <= 16);
        decoder.feed(b"\n\ndata: ok\n\n", &mut out).unwrap();
        assert_eq!(out, vec![SseEvent::data("ok")]);
    }
}
