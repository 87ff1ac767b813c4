//! The tiktoken encodings, chosen by model name and loaded once per process.

use tiktoken_rs::CoreBPE;

/// A tiktoken byte-pair encoding.
///
/// Each encoding's tables are parsed the first time it is used and kept for the life of the
/// process; later uses only read them. Parsing takes a while (measured in a release build: about
/// 0.3 s for `o200k_base`, 0.12 s for `cl100k_base`; several times more in a debug build), so a
/// server may call [`Encoding::preload`] at start rather than on its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `o200k_base`: gpt-4o, gpt-4.1, gpt-4.5, gpt-5, the o1/o3/o4 reasoning models,
    /// chatgpt-4o, gpt-oss, and the fallback for names this crate does not know.
    O200kBase,
    /// `cl100k_base`: gpt-4 (before gpt-4o), gpt-3.5-turbo, text-embedding-3-*,
    /// text-embedding-ada-002, davinci-002 and babbage-002.
    Cl100kBase,
}

/// Name prefixes of the models that use `o200k_base`; checked before [`CL100K_PREFIXES`], since
/// `gpt-4o` and `gpt-4.1` also start with `gpt-4`.
const O200K_PREFIXES: &[&str] = &[
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "chatgpt-4o",
    "gpt-oss",
    "codex-",
    "omni-moderation",
];

/// The reasoning-model families; a name matches when it is the family or starts with `family-`.
const O200K_FAMILIES: &[&str] = &["o1", "o3", "o4"];

const CL100K_PREFIXES: &[&str] = &[
    "gpt-4",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-3",
    "text-embedding-ada-002",
    "davinci-002",
    "babbage-002",
];

impl Encoding {
    /// The encoding `model` uses.
    ///
    /// A fine-tune (`ft:gpt-4o-mini:org::id`) uses its base model's encoding, and a
    /// provider-qualified name (`openai/gpt-4o`) is read after its last `/`. A name that matches
    /// no known family falls back to [`Encoding::O200kBase`], the encoding of every current
    /// OpenAI model.
    ///
    /// ```
    /// use ratelimit_openai::Encoding;
    ///
    /// assert_eq!(Encoding::for_model("gpt-4o-mini"), Encoding::O200kBase);
    /// assert_eq!(Encoding::for_model("gpt-3.5-turbo"), Encoding::Cl100kBase);
    /// assert_eq!(Encoding::for_model("ft:gpt-3.5-turbo:acme::abc"), Encoding::Cl100kBase);
    /// assert_eq!(Encoding::for_model("some-local-model"), Encoding::O200kBase);
    /// ```
    pub fn for_model(model: &str) -> Encoding {
        let name = model.rsplit('/').next().unwrap_or(model);
        let name = name.strip_prefix("ft:").unwrap_or(name);
        let name = name.to_ascii_lowercase();
        let is_family = |family: &&str| {
            name == *family
                || name
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('-'))
        };
        if O200K_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
            || O200K_FAMILIES.iter().any(is_family)
        {
            Encoding::O200kBase
        } else if CL100K_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            Encoding::Cl100kBase
        } else {
            Encoding::O200kBase
        }
    }

    /// The encoding's tiktoken name (`"o200k_base"`, `"cl100k_base"`).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// The number of tokens of `text`. Text that looks like a special token
    /// (`<|endoftext|>`) is counted as ordinary text, as the API does with user content.
    pub fn count(self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        self.bpe().encode_ordinary(text).len() as u64
    }

    /// The token ids of `text` (special-token look-alikes encoded as ordinary text).
    pub fn encode(self, text: &str) -> Vec<u32> {
        self.bpe().encode_ordinary(text)
    }

    /// Parses the encoding's tables now if no use has yet (a no-op after the first call).
    pub fn preload(self) {
        let _ = self.bpe();
    }

    fn bpe(self) -> &'static CoreBPE {
        // tiktoken-rs parses each embedded table once, on first use, behind a `LazyLock`.
        match self {
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }
}
