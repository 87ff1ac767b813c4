//! Token counting: the encoding per model, chat counting as OpenAI documents it (checked against
//! the cookbook's published counts and tiktoken-rs's own counter), and request estimates.

use ratelimit_openai::{
    ChatCompletionRequest, ChatMessage, CompletionRequest, ContentPart, DEFAULT_MAX_OUTPUT_TOKENS,
    EmbeddingsRequest, Encoding, Estimate, Estimator, IMAGE_TOKENS_HIGH, IMAGE_TOKENS_LOW,
    ImageUrl, ImageUrlPart, Input, LEGACY_DEFAULT_MAX_TOKENS, MessageContent, Role, TextPart,
};
use serde_json::{Map, json};

#[test]
fn models_map_to_their_encodings() {
    let o200k = [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "chatgpt-4o-latest",
        "gpt-4.1",
        "gpt-4.1-nano",
        "gpt-4.5-preview",
        "gpt-5",
        "gpt-5-mini",
        "o1",
        "o1-mini",
        "o3",
        "o3-mini-2025-01-31",
        "o4-mini",
        "gpt-oss-120b",
        "ft:gpt-4o-mini-2024-07-18:acme::A1b2",
        "openai/gpt-4o",
        "GPT-4O",
    ];
    for model in o200k {
        assert_eq!(Encoding::for_model(model), Encoding::O200kBase, "{model}");
    }
    let cl100k = [
        "gpt-4",
        "gpt-4-0613",
        "gpt-4-turbo",
        "gpt-4-32k",
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-instruct",
        "gpt-35-turbo",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "davinci-002",
        "babbage-002",
        "ft:gpt-3.5-turbo-0125:acme::xyz",
    ];
    for model in cl100k {
        assert_eq!(Encoding::for_model(model), Encoding::Cl100kBase, "{model}");
    }
    // Unknown names fall back to the current encoding; `o10` is not the o1 family.
    for model in ["llama-3.1-70b", "o10", "claude-sonnet-4", ""] {
        assert_eq!(Encoding::for_model(model), Encoding::O200kBase, "{model}");
    }
    assert_eq!(Encoding::O200kBase.name(), "o200k_base");
    assert_eq!(Encoding::Cl100kBase.name(), "cl100k_base");
}

#[test]
fn counts_known_texts() {
    for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
        encoding.preload();
        encoding.preload();
        assert_eq!(encoding.count(""), 0);
        assert_eq!(encoding.count("hello world"), 2);
        assert_eq!(
            encoding.count("hello world") as usize,
            encoding.encode("hello world").len()
        );
    }
    // The tiktoken README's example: "tiktoken is great!" is 6 cl100k tokens.
    assert_eq!(Encoding::Cl100kBase.count("tiktoken is great!"), 6);
    // A special-token look-alike in user text is ordinary text, not one special token.
    assert!(Encoding::Cl100kBase.count("<|endoftext|>") > 1);
}

/// The example conversation of OpenAI's cookbook "How to count tokens with tiktoken".
fn cookbook_messages() -> Vec<ChatMessage> {
    let named = |role: Role, name: &str, text: &str| ChatMessage {
        name: Some(name.into()),
        ..ChatMessage::new(role, text)
    };
    vec![
        ChatMessage::system(
            "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
        ),
        named(
            Role::System,
            "example_user",
            "New synergies will help drive top-line growth.",
        ),
        named(
            Role::System,
            "example_assistant",
            "Things working well together will increase revenue.",
        ),
        named(
            Role::System,
            "example_user",
            "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
        ),
        named(
            Role::System,
            "example_assistant",
            "Let's talk later when we're less busy about how to do better.",
        ),
        ChatMessage::user(
            "This late pivot means we don't have time to boil the ocean for the client deliverable.",
        ),
    ]
}

#[test]
fn chat_counting_matches_the_cookbook() {
    // The cookbook prints these counts, which the API's usage.prompt_tokens confirmed.
    for (model, expected) in [
        ("gpt-3.5-turbo", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
    ] {
        let request = ChatCompletionRequest::new(model, cookbook_messages());
        assert_eq!(
            Estimator::default().chat_prompt_tokens(&request),
            expected,
            "{model}"
        );
    }
}

#[test]
fn chat_counting_matches_tiktoken_rs() {
    let messages: Vec<tiktoken_rs::ChatCompletionRequestMessage> = cookbook_messages()
        .iter()
        .map(|message| tiktoken_rs::ChatCompletionRequestMessage {
            role: message.role.as_str().to_owned(),
            content: match &message.content {
                Some(MessageContent::Text(text)) => Some(text.clone()),
                _ => None,
            },
            name: message.name.clone(),
            function_call: None,
            tool_calls: Vec::new(),
            refusal: None,
        })
        .collect();
    for model in ["gpt-4o", "gpt-4", "gpt-4.1-mini"] {
        let theirs = tiktoken_rs::num_tokens_from_messages(model, &messages).unwrap() as u64;
        let ours = Estimator::default()
            .chat_prompt_tokens(&ChatCompletionRequest::new(model, cookbook_messages()));
        assert_eq!(ours, theirs, "{model}");
    }
}

#[test]
fn message_overheads_are_exact() {
    let estimator = Estimator::default();
    let enc = Encoding::O200kBase;
    let empty = ChatCompletionRequest::new("gpt-4o", Vec::new());
    assert_eq!(
        estimator.chat_prompt_tokens(&empty),
        3,
        "only the reply priming"
    );

    let one = ChatCompletionRequest::new("gpt-4o", vec![ChatMessage::user("hello world")]);
    assert_eq!(
        estimator.chat_prompt_tokens(&one),
        3 + 3 + enc.count("user") + 2
    );

    let named = ChatCompletionRequest::new(
        "gpt-4o",
        vec![ChatMessage {
            name: Some("bob".into()),
            ..ChatMessage::user("hello world")
        }],
    );
    assert_eq!(
        estimator.chat_prompt_tokens(&named),
        estimator.chat_prompt_tokens(&one) + enc.count("bob") + 1
    );
}

fn image(detail: Option<ratelimit_openai::ImageDetail>) -> ContentPart {
    ContentPart::ImageUrl(ImageUrlPart {
        image_url: ImageUrl {
            url: "https://example.com/cat.png".into(),
            detail,
            extra: Map::new(),
        },
        extra: Map::new(),
    })
}

#[test]
fn parts_count_text_and_images_by_detail() {
    use ratelimit_openai::ImageDetail;
    let estimator = Estimator::default();
    let with_parts = |parts: Vec<ContentPart>| {
        let message = ChatMessage {
            content: Some(MessageContent::Parts(parts)),
            ..ChatMessage::user("")
        };
        estimator.chat_prompt_tokens(&ChatCompletionRequest::new("gpt-4o", vec![message]))
    };
    let base = with_parts(Vec::new());
    let text = ContentPart::Text(TextPart {
        text: "hello world".into(),
        extra: Map::new(),
    });
    assert_eq!(with_parts(vec![text.clone()]), base + 2);
    assert_eq!(
        with_parts(vec![image(Some(ImageDetail::Low))]),
        base + IMAGE_TOKENS_LOW
    );
    assert_eq!(
        with_parts(vec![image(Some(ImageDetail::High))]),
        base + IMAGE_TOKENS_HIGH
    );
    assert_eq!(with_parts(vec![image(None)]), base + IMAGE_TOKENS_HIGH);
    assert_eq!(
        with_parts(vec![
            text,
            image(Some(ImageDetail::Low)),
            image(Some(ImageDetail::Auto))
        ]),
        base + 2 + IMAGE_TOKENS_LOW + IMAGE_TOKENS_HIGH
    );
    assert_eq!(IMAGE_TOKENS_HIGH, 1_445);

    let custom = Estimator {
        image_tokens_low: 10,
        image_tokens_high: 20,
        ..Estimator::default()
    };
    let message = ChatMessage {
        content: Some(MessageContent::Parts(vec![
            image(Some(ImageDetail::Low)),
            image(None),
        ])),
        ..ChatMessage::user("")
    };
    assert_eq!(
        custom.chat_prompt_tokens(&ChatCompletionRequest::new("gpt-4o", vec![message])),
        base + 30
    );
}

#[test]
fn tool_calls_and_definitions_are_counted() {
    let estimator = Estimator::default();
    let enc = Encoding::O200kBase;
    let plain = ChatCompletionRequest::new("gpt-4o", vec![ChatMessage::user("weather?")]);
    let base = estimator.chat_prompt_tokens(&plain);

    let mut with_tools = plain.clone();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    with_tools.extra.insert("tools".into(), tools.clone());
    assert_eq!(
        estimator.chat_prompt_tokens(&with_tools),
        base + enc.count(&tools.to_string())
    );

    let call = ChatMessage {
        content: None,
        tool_calls: Some(vec![
            json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}),
        ]),
        ..ChatMessage::assistant("")
    };
    let answer = ChatMessage {
        tool_call_id: Some("call_1".into()),
        ..ChatMessage::new(Role::Tool, "sunny")
    };
    let mut conversation = plain.clone();
    conversation.messages.extend([call, answer]);
    let expected = base
        + (3 + enc.count("assistant")
            + enc.count("get_weather")
            + enc.count("{\"city\":\"Paris\"}")
            + 1)
        + (3 + enc.count("tool") + enc.count("sunny") + enc.count("call_1"));
    assert_eq!(estimator.chat_prompt_tokens(&conversation), expected);
}

#[test]
fn chat_output_is_the_limit_times_n_or_the_default() {
    let mut request = ChatCompletionRequest::new("gpt-4o", vec![ChatMessage::user("hi")]);
    let input = Estimator::default().chat_prompt_tokens(&request);
    assert_eq!(
        Estimator::default().chat(&request),
        Estimate {
            input,
            output: DEFAULT_MAX_OUTPUT_TOKENS
        }
    );
    let custom = Estimator {
        default_max_output_tokens: 50,
        ..Estimator::default()
    };
    assert_eq!(custom.chat(&request).output, 50);
    request.n = Some(3);
    assert_eq!(custom.chat(&request).output, 150);
    request.max_tokens = Some(7);
    assert_eq!(custom.chat(&request).output, 21);
    request.max_completion_tokens = Some(10);
    assert_eq!(custom.chat(&request).output, 30);
    request.n = Some(0);
    assert_eq!(custom.chat(&request).output, 0);
    assert_eq!(custom.chat(&request).total(), input);
}

#[test]
fn huge_values_saturate_instead_of_overflowing() {
    let mut request = ChatCompletionRequest::new("gpt-4o", vec![ChatMessage::user("hi")]);
    request.max_completion_tokens = Some(u64::MAX / 2);
    request.n = Some(u64::MAX);
    let estimate = Estimator::default().chat(&request);
    assert_eq!(estimate.output, u64::MAX);
    assert_eq!(estimate.total(), u64::MAX);
}

#[test]
fn legacy_completions_count_each_prompt_and_best_of() {
    let estimator = Estimator::default();
    let enc = Encoding::Cl100kBase;
    let mut request = CompletionRequest::new("gpt-3.5-turbo-instruct", "Say this is a test");
    assert_eq!(
        estimator.completion(&request),
        Estimate {
            input: enc.count("Say this is a test"),
            output: LEGACY_DEFAULT_MAX_TOKENS
        }
    );
    request.max_tokens = Some(7);
    request.n = Some(2);
    request.best_of = Some(3);
    request.prompt = Input::Texts(vec!["one".into(), "two words".into()]);
    assert_eq!(
        estimator.completion(&request),
        Estimate {
            input: enc.count("one") + enc.count("two words"),
            output: 7 * 3 * 2
        }
    );
    request.prompt = Input::TokenBatches(vec![vec![1, 2, 3], vec![4, 5]]);
    assert_eq!(estimator.completion(&request).input, 5);
    request.prompt = Input::Tokens(vec![9; 10]);
    assert_eq!(
        estimator.completion(&request),
        Estimate {
            input: 10,
            output: 21
        }
    );
}

#[test]
fn embeddings_sum_their_inputs() {
    let estimator = Estimator::default();
    let enc = Encoding::Cl100kBase;
    let mut request = EmbeddingsRequest::new("text-embedding-3-small", "hello world");
    assert_eq!(
        estimator.embeddings(&request),
        Estimate {
            input: 2,
            output: 0
        }
    );
    request.input = Input::Texts(vec!["hello world".into(), "tiktoken is great!".into()]);
    assert_eq!(estimator.embeddings(&request).input, 2 + 6);
    request.input = Input::Tokens(vec![1; 17]);
    assert_eq!(estimator.embeddings(&request).input, 17);
    request.input = Input::TokenBatches(vec![vec![1; 3], vec![], vec![2; 4]]);
    assert_eq!(estimator.embeddings(&request).input, 7);
    assert_eq!(enc.count("hello world"), 2);
}
