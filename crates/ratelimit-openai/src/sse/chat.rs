//! Reading a streamed chat completion: chunks, the `[DONE]` sentinel, in-stream errors, usage.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::{SseDecoder, SseError, SseEvent};
use crate::types::{ChatCompletionChunk, ErrorResponse, Usage};

/// One event of a streamed chat completion.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatStreamEvent {
    /// A chunk of the answer (or the final usage chunk, whose `choices` are empty).
    Chunk(ChatCompletionChunk),
    /// An error the server sent inside the stream (`data: {"error": {...}}`).
    Error(ErrorResponse),
    /// The `[DONE]` sentinel: the stream is complete.
    Done,
}

/// Why a chat stream could not be read.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The event stream itself is broken (an oversized event, or it was cut short).
    #[error(transparent)]
    Sse(#[from] SseError),
    /// An event's data is not a chunk or an error body.
    #[error("stream event is not a chat completion chunk: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// Data came after `[DONE]`.
    #[error("data after the [DONE] event")]
    DataAfterDone,
    /// The stream ended without `[DONE]`: the answer may be incomplete.
    #[error("stream ended without the [DONE] event")]
    MissingDone,
}

/// Reads a streamed chat completion from its bytes, in any chunking, and keeps the usage of its
/// final chunk (sent when the request set `stream_options.include_usage`).
///
/// ```
/// use ratelimit_openai::sse::{ChatStreamDecoder, ChatStreamEvent};
///
/// let body = concat!(
///     "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",",
///     "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
///     "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",",
///     "\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n",
///     "data: [DONE]\n\n",
/// );
/// let mut decoder = ChatStreamDecoder::new();
/// let mut events = Vec::new();
/// decoder.feed(body.as_bytes(), &mut events)?;
/// let usage = decoder.finish()?.expect("the stream reported its usage");
/// assert_eq!((usage.prompt_tokens, usage.completion_tokens), (9, 1));
/// assert_eq!(events.len(), 3);
/// assert!(matches!(events[2], ChatStreamEvent::Done));
/// # Ok::<(), ratelimit_openai::sse::StreamError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ChatStreamDecoder {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    usage: Option<Usage>,
    done: bool,
}

impl ChatStreamDecoder {
    /// A decoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes the next bytes of the stream, appending the events they complete to `out`.
    ///
    /// # Errors
    ///
    /// The first problem met in these bytes; as with [`SseDecoder::feed`], the rest of the
    /// bytes are still decoded and `out` holds every good event.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<ChatStreamEvent>,
    ) -> Result<(), StreamError> {
        let mut first_error = self
            .sse
            .feed(chunk, &mut self.events)
            .err()
            .map(StreamError::Sse);
        let events = std::mem::take(&mut self.events);
        for event in &events {
            match self.event(event) {
                Ok(event) => out.push(event),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        self.events = events;
        self.events.clear();
        first_error.map_or(Ok(()), Err)
    }

    fn event(&mut self, event: &SseEvent) -> Result<ChatStreamEvent, StreamError> {
        if self.done {
            return Err(StreamError::DataAfterDone);
        }
        if event.is_done() {
            self.done = true;
            return Ok(ChatStreamEvent::Done);
        }
        let value: Value = serde_json::from_str(&event.data).map_err(StreamError::InvalidJson)?;
        if value.get("error").is_some() {
            let error = ErrorResponse::deserialize(value).map_err(StreamError::InvalidJson)?;
            return Ok(ChatStreamEvent::Error(error));
        }
        let chunk = ChatCompletionChunk::deserialize(value).map_err(StreamError::InvalidJson)?;
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        Ok(ChatStreamEvent::Chunk(chunk))
    }

    /// The usage reported so far (by the final chunk, normally).
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// Whether `[DONE]` has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Ends the stream and returns its usage, if it reported one.
    ///
    /// # Errors
    ///
    /// [`StreamError::Sse`] with [`SseError::Truncated`] if it ended inside an event, else
    /// [`StreamError::MissingDone`] if it never sent `[DONE]`.
    pub fn finish(&mut self) -> Result<Option<Usage>, StreamError> {
        self.sse.finish()?;
        if !self.done {
            return Err(StreamError::MissingDone);
        }
        Ok(self.usage.take())
    }
}
