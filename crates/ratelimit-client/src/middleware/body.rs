//! `LimitedBody`: the body of an answer that went through the middleware: the bytes already read
//! (a JSON answer, an error), the inner body untouched (a call that is not limited), or an event
//! stream passed on chunk by chunk that settles its grant to its final usage when it ends.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use ratelimit_limiter::Permit;
use ratelimit_openai::Estimate;

use crate::flow::Flow;
use crate::proxy::UsageWatch;

/// The body of an answer that went through [`RateLimit`](crate::RateLimit): the same bytes as
/// the inner body's, as [`Bytes`].
///
/// A JSON answer arrives already read (it was read to settle the grant); an event stream
/// arrives chunk by chunk as the provider sends it, and its end is reported once the grant is
/// settled to the usage it reported. Dropped before its end, it keeps the grant's estimate
/// counted.
#[cfg_attr(not(feature = "tower"), allow(unreachable_pub))]
pub struct LimitedBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    /// Read already: the bytes are handed on once.
    Full(Option<Bytes>),
    /// Not limited: the inner body as it is.
    Inner(Pin<Box<B>>),
    /// An event stream that settles when it ends.
    Settling {
        body: Pin<Box<B>>,
        watch: Box<Watch>,
    },
}

/// What a streamed answer needs to settle its grant: the usage seen so far, and, once the
/// stream has ended, the settlement under way.
struct Watch {
    flow: Arc<Flow>,
    permit: Option<Permit>,
    estimate: Estimate,
    usage: UsageWatch,
    /// Behind a mutex only so the body is `Sync` when the inner body is (reqwest wants that);
    /// it is reached through `&mut` (`get_mut`), never locked.
    settling: Option<Mutex<BoxFuture<'static, ()>>>,
    done: bool,
}

impl<B> std::fmt::Debug for LimitedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Full(_) => "read",
            Kind::Inner(_) => "untouched",
            Kind::Settling { .. } => "event stream",
        };
        f.debug_struct("LimitedBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl<B> LimitedBody<B> {
    /// A body of these bytes.
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Full(Some(bytes)),
        }
    }

    /// The inner body, untouched.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner(Box::pin(body)),
        }
    }

    /// An event stream whose grant is settled to its final usage when it ends.
    pub(crate) fn settling(
        body: B,
        flow: Arc<Flow>,
        permit: Option<Permit>,
        estimate: Estimate,
    ) -> Self {
        Self {
            kind: Kind::Settling {
                body: Box::pin(body),
                watch: Box::new(Watch {
                    flow,
                    permit,
                    estimate,
                    usage: UsageWatch::new(),
                    settling: None,
                    done: false,
                }),
            },
        }
    }
}

impl Watch {
    /// Settles the grant (once), then reports whether that is done.
    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let settling = self.settling.get_or_insert_with(|| {
            let flow = Arc::clone(&self.flow);
            let (permit, usage, estimate) = (self.permit.take(), self.usage.usage(), self.estimate);
            Mutex::new(Box::pin(async move {
                flow.settle(permit, usage, estimate).await;
            }))
        });
        let future = settling.get_mut().unwrap_or_else(PoisonError::into_inner);
        ready!(future.as_mut().poll(cx));
        self.settling = None;
        self.done = true;
        Poll::Ready(())
    }
}

/// The data of a frame as `Bytes` (no copy when it is `Bytes` already).
fn into_bytes<D: Buf>(mut data: D) -> Bytes {
    data.copy_to_bytes(data.remaining())
}

impl<B: Body> Body for LimitedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Inner(body) => body
                .as_mut()
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map(|f| f.map_data(into_bytes)))),
            Kind::Settling { body, watch } => {
                if watch.done || watch.settling.is_some() {
                    ready!(watch.poll_settle(cx));
                    return Poll::Ready(None);
                }
                match ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        let frame = frame.map_data(into_bytes);
                        if let Some(data) = frame.data_ref() {
                            watch.usage.feed(data);
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    // Broken off: the grant keeps its estimate (dropped with the body).
                    Some(Err(e)) => Poll::Ready(Some(Err(e))),
                    None => {
                        ready!(watch.poll_settle(cx));
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Inner(body) => body.is_end_stream(),
            // Not before the grant is settled: whoever reads the body polls it to its end.
            Kind::Settling { watch, .. } => watch.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Inner(body) | Kind::Settling { body, .. } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn read_bodies_hand_their_bytes_on_once_with_an_exact_size() {
        let body = LimitedBody::<Full<Bytes>>::full(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"a\":1}");
        assert!(LimitedBody::<Full<Bytes>>::full(Bytes::new()).is_end_stream());
    }

    #[tokio::test]
    async fn untouched_bodies_keep_their_frames_and_trailers() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-done", http::HeaderValue::from_static("1"));
        let frames = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::data(Bytes::from_static(b"c"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let body = LimitedBody::inner(StreamBody::new(futures_util::stream::iter(frames)));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(&collected.to_bytes()[..], b"abc");
    }
}
