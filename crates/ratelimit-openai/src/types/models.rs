//! `GET /v1/models`: the list of models.

use serde::{Deserialize, Serialize};

use super::Extra;

/// The response to `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// `"list"`.
    pub object: String,
    /// The models.
    pub data: Vec<Model>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One model of a [`ModelList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The model name, as requests give it.
    pub id: String,
    /// `"model"`.
    pub object: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The owning organization.
    pub owned_by: String,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Extra,
}
