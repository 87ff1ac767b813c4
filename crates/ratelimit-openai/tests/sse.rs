//! Server-sent events: any chunking of a stream decodes to the same events, encoding then
//! decoding gives the events back, arbitrary bytes never panic, and a streamed chat completion
//! is read with its usage.

use proptest::prelude::*;
use ratelimit_openai::sse::{
    ChatStreamDecoder, ChatStreamEvent, SseDecoder, SseError, SseEvent, StreamError, encode_comment,
};

/// Cases per property: several thousand by default; `PROPTEST_CASES` overrides.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

/// Feeds `bytes` cut at `cuts` (any positions, any order), then finishes.
fn decode_in_pieces(
    decoder: &mut SseDecoder,
    bytes: &[u8],
    cuts: &[usize],
) -> (Vec<SseEvent>, Result<(), SseError>) {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut events = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        let _ = decoder.feed(&bytes[start..cut], &mut events);
        start = cut;
    }
    let end = decoder.finish();
    (events, end)
}

/// What a decoder gives back for `data`: line breaks of any kind become `\n`.
fn normalized(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

fn field_text() -> impl Strategy<Value = String> {
    // Any characters but line breaks (and NUL, which an id may not carry).
    proptest::string::string_regex("[^\r\n\u{0}]{0,12}").expect("valid regex")
}

fn event() -> impl Strategy<Value = SseEvent> {
    (
        proptest::option::of(field_text()),
        // Data with every kind of line break, spaces and colons in it.
        proptest::string::string_regex("([ :a-z\u{e9}\u{1F600}]|\r\n|\r|\n){0,24}")
            .expect("valid regex"),
        proptest::option::of(field_text()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(event, data, id, retry)| SseEvent {
            event,
            data,
            id,
            retry,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_split_of_an_encoded_stream_decodes_the_same_events(
        events in proptest::collection::vec(event(), 0..8),
        comments in proptest::collection::vec(field_text(), 0..8),
        crlf in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = String::new();
        for (index, event) in events.iter().enumerate() {
            if let Some(comment) = comments.get(index) {
                stream.push_str(&encode_comment(comment).unwrap());
            }
            stream.push_str(&event.encode().unwrap());
        }
        if crlf {
            // Servers may end lines with \r\n instead; a decoder must not care.
            stream = stream.replace('\n', "\r\n");
        }
        let expected: Vec<SseEvent> = events
            .iter()
            .map(|event| SseEvent { data: normalized(&event.data), ..event.clone() })
            .collect();

        let (whole, end) = decode_in_pieces(&mut SseDecoder::new(), stream.as_bytes(), &[]);
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(end, Ok(()));
        let (pieces, end) = decode_in_pieces(&mut SseDecoder::new(), stream.as_bytes(), &cuts);
        prop_assert_eq!(&pieces, &expected);
        prop_assert_eq!(end, Ok(()));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_any_split_agrees(
        bytes in proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(b'\n'),
                Just(b'\r'),
                Just(b':'),
                Just(b' '),
                Just(b'd'),
            ],
            0..200,
        ),
        prefix in prop_oneof![Just(&b""[..]), Just(&b"data: "[..]), Just(&b"\xEF\xBB\xBF"[..])],
        limit in prop_oneof![Just(usize::MAX), 0usize..40],
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let bytes = [prefix, &bytes[..]].concat();
        let (whole, whole_end) =
            decode_in_pieces(&mut SseDecoder::with_max_event_bytes(limit), &bytes, &[]);
        let (pieces, pieces_end) =
            decode_in_pieces(&mut SseDecoder::with_max_event_bytes(limit), &bytes, &cuts);
        prop_assert_eq!(whole, pieces);
        prop_assert_eq!(whole_end, pieces_end);
    }
}

#[test]
fn a_decoder_is_reusable_after_finish() {
    let mut decoder = SseDecoder::new();
    let (first, end) = decode_in_pieces(&mut decoder, b"data: a\n", &[]);
    assert!(first.is_empty());
    assert_eq!(end, Err(SseError::Truncated));
    let (second, end) = decode_in_pieces(&mut decoder, b"\xEF\xBB\xBFdata: b\n\n", &[]);
    assert_eq!(second, vec![SseEvent::data("b")]);
    assert_eq!(end, Ok(()));
}

const CHAT_STREAM: &str = concat!(
    ": OPENROUTER PROCESSING\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello \\u00e9t\\u00e9\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\r\n\r\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn a_chat_stream_yields_chunks_usage_and_done_at_any_split() {
    let bytes = CHAT_STREAM.as_bytes();
    for cut in 0..=bytes.len() {
        let mut decoder = ChatStreamDecoder::new();
        let mut events = Vec::new();
        decoder.feed(&bytes[..cut], &mut events).unwrap();
        decoder.feed(&bytes[cut..], &mut events).unwrap();
        assert!(decoder.is_done());
        assert_eq!(decoder.usage().map(|u| u.total_tokens), Some(12));
        let usage = decoder.finish().unwrap().expect("usage");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (9, 3));
        assert_eq!(events.len(), 5, "cut at {cut}");
        let ChatStreamEvent::Chunk(second) = &events[1] else {
            panic!("a chunk");
        };
        assert_eq!(
            second.choices[0].delta.content.as_deref(),
            Some("Hello été")
        );
        assert_eq!(events[4], ChatStreamEvent::Done);
    }
}

#[test]
fn a_chat_stream_reports_in_stream_errors_and_bad_endings() {
    let mut decoder = ChatStreamDecoder::new();
    let mut events = Vec::new();
    decoder
        .feed(
            b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
            &mut events,
        )
        .unwrap();
    let [ChatStreamEvent::Error(error)] = &events[..] else {
        panic!("one error event, got {events:?}");
    };
    assert_eq!(error.error.message, "overloaded");
    assert!(matches!(decoder.finish(), Err(StreamError::MissingDone)));

    let mut decoder = ChatStreamDecoder::new();
    let mut events = Vec::new();
    let cut = &CHAT_STREAM.as_bytes()[..CHAT_STREAM.len() / 2];
    decoder.feed(cut, &mut events).unwrap();
    assert!(matches!(
        decoder.finish(),
        Err(StreamError::Sse(SseError::Truncated) | StreamError::MissingDone)
    ));

    let mut decoder = ChatStreamDecoder::new();
    let mut events = Vec::new();
    let result = decoder.feed(
        b"data: not json\n\ndata: [DONE]\n\ndata: {}\n\n",
        &mut events,
    );
    assert!(
        matches!(result, Err(StreamError::InvalidJson(_))),
        "{result:?}"
    );
    assert_eq!(events, vec![ChatStreamEvent::Done]);
    let after = decoder.feed(b"data: [DONE]\n\n", &mut events);
    assert!(matches!(after, Err(StreamError::DataAfterDone)));
    assert!(decoder.finish().unwrap().is_none());
}
