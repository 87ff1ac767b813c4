//! Token counting: which tiktoken encoding a model uses, and what a request will cost.

mod encoding;
mod estimate;

pub use encoding::Encoding;
pub use estimate::{
    DEFAULT_MAX_OUTPUT_TOKENS, Estimate, Estimator, IMAGE_TOKENS_HIGH, IMAGE_TOKENS_LOW,
    LEGACY_DEFAULT_MAX_TOKENS,
};
