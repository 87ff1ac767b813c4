//! `ChatStream`: a streamed chat completion's chunks, settling the grant to the final usage.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use ratelimit_limiter::Permit;
use ratelimit_openai::sse::{ChatStreamDecoder, ChatStreamEvent};
use ratelimit_openai::{ChatCompletionChunk, Estimate, Usage};

use crate::client::Client;
use crate::error::ClientError;

/// The chunks of a streamed chat completion, as they arrive.
///
/// When the stream ends (`[DONE]`), the grant is settled to the usage of the final chunk. A stream
/// dropped early keeps its whole estimate counted (the provider counted it too).
pub struct ChatStream {
    inner: BoxStream<'static, Result<ChatCompletionChunk, ClientError>>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream").finish_non_exhaustive()
    }
}

struct State {
    client: Client,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: ChatStreamDecoder,
    ready: VecDeque<Result<ChatCompletionChunk, ClientError>>,
    permit: Option<Permit>,
    estimate: Estimate,
    finished: bool,
}

impl ChatStream {
    pub(crate) fn new(
        client: Client,
        response: reqwest::Response,
        permit: Option<Permit>,
        estimate: Estimate,
    ) -> Self {
        let state = State {
            client,
            body: response.bytes_stream().boxed(),
            decoder: ChatStreamDecoder::new(),
            ready: VecDeque::new(),
            permit,
            estimate,
            finished: false,
        };
        let inner = futures_util::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(item) = s.ready.pop_front() {
                    return Some((item, s));
                }
                if s.finished {
                    return None;
                }
                match s.body.next().await {
                    Some(Ok(bytes)) => s.feed(&bytes),
                    Some(Err(e)) => {
                        s.finished = true;
                        s.ready.push_back(Err(ClientError::Malformed(format!(
                            "the stream broke off: {e}"
                        ))));
                    }
                    None => {
                        s.finished = true;
                        match s.decoder.finish() {
                            Ok(usage) => s.settle(usage).await,
                            Err(e) => s
                                .ready
                                .push_back(Err(ClientError::Malformed(e.to_string()))),
                        }
                    }
                }
            }
        });
        Self {
            inner: inner.boxed(),
        }
    }
}

impl State {
    fn feed(&mut self, bytes: &[u8]) {
        let mut events = Vec::new();
        let result = self.decoder.feed(bytes, &mut events);
        for event in events {
            match event {
                ChatStreamEvent::Chunk(chunk) => self.ready.push_back(Ok(chunk)),
                ChatStreamEvent::Error(e) => self.ready.push_back(Err(ClientError::Api {
                    status: 200,
                    message: e.error.message.clone(),
                    error: Some(Box::new(e.error)),
                    permanent: false,
                    attempts: 1,
                })),
                ChatStreamEvent::Done => {}
            }
        }
        if let Err(e) = result {
            self.finished = true;
            self.ready
                .push_back(Err(ClientError::Malformed(e.to_string())));
        }
    }

    async fn settle(&mut self, usage: Option<Usage>) {
        let permit = self.permit.take();
        self.client
            .settle(permit, usage.as_ref(), self.estimate)
            .await;
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatCompletionChunk, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
