//! Server-sent events (the `text/event-stream` format of streamed completions), both ways.
//!
//! - [`SseDecoder`] turns bytes, in whatever chunks they arrive, into [`SseEvent`]s, following
//!   the WHATWG rules: `data:` lines (several make one multi-line value), `event:`, `id:`,
//!   `retry:`, comments (`:` lines), `\n`, `\r\n` or `\r` line ends, a leading byte-order mark.
//! - [`SseEvent::encode`] and [`encode_comment`] write events for a server.
//! - [`ChatStreamDecoder`] reads a streamed chat completion: it parses each event into a
//!   [`ChatCompletionChunk`](crate::ChatCompletionChunk), recognizes the `[DONE]` sentinel and
//!   in-stream error bodies, and keeps the usage of the final chunk.
//!
//! ```
//! use ratelimit_openai::sse::{SseDecoder, SseEvent};
//!
//! let stream = [SseEvent::data("{\"a\":1}").encode()?, SseEvent::done().encode()?].concat();
//! let mut decoder = SseDecoder::new();
//! let mut events = Vec::new();
//! for chunk in stream.as_bytes().chunks(3) {
//!     decoder.feed(chunk, &mut events)?;
//! }
//! decoder.finish()?;
//! assert_eq!(events, vec![SseEvent::data("{\"a\":1}"), SseEvent::done()]);
//! assert!(events[1].is_done());
//! # Ok::<(), ratelimit_openai::sse::SseError>(())
//! ```

mod chat;
mod decoder;
mod event;

pub use chat::{ChatStreamDecoder, ChatStreamEvent, StreamError};
pub use decoder::{DEFAULT_MAX_EVENT_BYTES, SseDecoder};
pub use event::{DONE, SseEvent, encode_comment};

use thiserror::Error;

/// Why events could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    /// An event (its data, or one line) grew past the decoder's limit; it was dropped and
    /// decoding went on after it.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The decoder's limit, in bytes.
        limit: usize,
    },
    /// The stream ended inside an event (no blank line after it); the partial event was dropped.
    #[error("stream ended in the middle of an event")]
    Truncated,
    /// A field to encode contains a line break (or, for an id, a NUL), which the format cannot
    /// carry.
    #[error("the `{field}` field of a server-sent event cannot contain a line break or NUL")]
    InvalidField {
        /// `event`, `id` or `comment`.
        field: &'static str,
    },
}
