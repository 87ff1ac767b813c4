//! The gateway's configuration: the TOML file as written, its validation (typed errors naming the
//! field), and the secrets it names, read from the environment.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ratelimit_core::Policy;
use ratelimit_limiter::Priority;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Largest request body accepted by default: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Why a configuration cannot be used. Every variant names the field at fault; none carries a
/// secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML for this configuration (the message names the field and line).
    #[error("invalid configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// A field's value is not acceptable.
    #[error("invalid configuration: `{field}`: {reason}")]
    Invalid {
        /// The field, as a TOML path (`tenants[1].limits.rpm`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret's environment variable is unset or empty.
    #[error(
        "invalid configuration: `{field}` names the environment variable {var}, which is not set"
    )]
    MissingSecret {
        /// The field naming the variable.
        field: String,
        /// The variable (its name only; never its value).
        var: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The limits of one level (global, a model, a tenant). Every field is optional; a level with none
/// does not limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Requests per day.
    pub rpd: Option<u64>,
    /// Tokens (input + output) per minute.
    pub tpm: Option<u64>,
    /// Tokens per day.
    pub tpd: Option<u64>,
    /// Requests in flight at once.
    pub concurrency: Option<u64>,
}

impl Limits {
    /// Whether no limit is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The policy these limits make; `field` names them in errors.
    pub(crate) fn policy(&self, field: &str) -> Result<Policy, ConfigError> {
        let mut builder = Policy::builder();
        if let Some(v) = self.rpm {
            builder = builder.requests_per_minute(v);
        }
        if let Some(v) = self.rpd {
            builder = builder.requests_per_day(v);
        }
        if let Some(v) = self.tpm {
            builder = builder.tokens_per_minute(v);
        }
        if let Some(v) = self.tpd {
            builder = builder.tokens_per_day(v);
        }
        if let Some(v) = self.concurrency {
            builder = builder.concurrency(v);
        }
        builder.build().map_err(|e| invalid(field, e.to_string()))
    }
}

/// Where the shared state lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Backend {
    /// In this process (one gateway instance).
    #[default]
    Memory,
    /// On Redis: every gateway instance on the same server and prefix shares one budget.
    Redis {
        /// `redis://host:port/db` (or `rediss://`).
        url: String,
        /// Namespace of the keys (default `llmrl-gateway`).
        #[serde(default = "default_prefix")]
        prefix: String,
    },
}

fn default_prefix() -> String {
    "llmrl-gateway".into()
}

/// How a grant is settled once the answer's usage is known (the client crate's `Settle`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettleMode {
    /// As OpenAI counts: the output limit stays counted, the prompt is corrected to the actual
    /// count.
    #[default]
    Admission,
    /// Input and output are both corrected to the actual usage.
    Usage,
}

/// The provider the gateway forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The environment variable holding the provider's API key.
    pub api_key_env: String,
    /// Timeout of one upstream call, as humantime text (default `10m`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A priority class as written in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorityClass {
    /// Served first when requests wait.
    #[default]
    Interactive,
    /// Yields to interactive requests, never starved.
    Batch,
}

impl From<PriorityClass> for Priority {
    fn from(p: PriorityClass) -> Self {
        match p {
            PriorityClass::Interactive => Priority::Interactive,
            PriorityClass::Batch => Priority::Batch,
        }
    }
}

/// One tenant: a service that shares the provider account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Its name, in metrics and `/v1/limits` (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The environment variable holding its API key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// Or the SHA-256 of its API key, in hex (the key itself never appears in the file).
    #[serde(default)]
    pub key_sha256: Option<String>,
    /// Its priority class.
    #[serde(default)]
    pub priority: PriorityClass,
    /// How long its requests may wait for their turn, as humantime text; `0s` answers 429 at
    /// once. Default: the top-level `max_queue_time`.
    #[serde(default)]
    pub max_queue_time: Option<String>,
    /// Its own limits; default: the top-level `[tenant_default]`.
    #[serde(default)]
    pub limits: Option<Limits>,
}

/// The configuration file.
///
/// ```
/// use ratelimit_gateway::Config;
///
/// let config = Config::from_toml(r#"
///     [upstream]
///     base_url = "https://api.openai.com/v1"
///     api_key_env = "OPENAI_API_KEY"
///
///     [global]
///     rpm = 500
///     tpm = 200000
///
///     [[tenants]]
///     name = "search"
///     key_env = "SEARCH_KEY"
///     limits = { rpm = 100, tpm = 50000 }
/// "#)?;
/// assert_eq!(config.tenants[0].name, "search");
/// # Ok::<(), ratelimit_gateway::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest request body, in bytes (default 4 MiB); larger ones get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Default queue time of tenants, as humantime text (default `30s`).
    #[serde(default)]
    pub max_queue_time: Option<String>,
    /// How grants are settled to the usage.
    #[serde(default)]
    pub settle: SettleMode,
    /// Most distinct unlisted models tracked under `[model_default]` at once (default 1,000).
    #[serde(default = "default_max_models")]
    pub max_models: usize,
    /// The provider.
    pub upstream: Upstream,
    /// Where the shared state lives.
    #[serde(default)]
    pub backend: Backend,
    /// The whole account's limits (at least one). They follow the provider's rate-limit headers,
    /// and a provider 429 pauses every tenant.
    pub global: Limits,
    /// Limits of named models.
    #[serde(default)]
    pub models: BTreeMap<String, Limits>,
    /// Limits of each model not named in `models`, each on its own budget.
    #[serde(default)]
    pub model_default: Option<Limits>,
    /// Limits of each tenant that sets none of its own, each on its own budget.
    #[serde(default)]
    pub tenant_default: Option<Limits>,
    /// The tenants (at least one).
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_models() -> usize {
    1_000
}

/// A tenant after validation, its key reduced to a digest.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedTenant {
    pub(crate) name: String,
    pub(crate) digest: [u8; 32],
    pub(crate) priority: Priority,
    pub(crate) max_queue_time: Duration,
    /// Its own limits (`Some`), or the default's (`None` when `[tenant_default]` is set).
    pub(crate) own: Option<Policy>,
}

/// Everything validated and resolved: policies built, secrets read, durations parsed.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) max_body_bytes: usize,
    pub(crate) settle: SettleMode,
    pub(crate) max_models: usize,
    pub(crate) base_url: String,
    pub(crate) api_key: String,
    pub(crate) timeout: Duration,
    pub(crate) backend: Backend,
    pub(crate) global: Policy,
    pub(crate) models: BTreeMap<String, Policy>,
    pub(crate) model_default: Option<Policy>,
    pub(crate) tenant_default: Option<Policy>,
    pub(crate) tenants: Vec<ResolvedTenant>,
}

/// The SHA-256 of a key.
pub(crate) fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn duration(field: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(default),
        Some(t) => humantime::parse_duration(t.trim())
            .map_err(|e| invalid(field, format!("`{t}` is not a duration ({e})"))),
    }
}

fn hex32(field: &str, text: &str) -> Result<[u8; 32], ConfigError> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(field, "expected 64 hexadecimal digits (a SHA-256)"));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| invalid(field, "expected 64 hexadecimal digits (a SHA-256)"))?;
    }
    Ok(out)
}

impl Config {
    /// Parses a configuration from TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Toml`] naming the field and line.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Reads and parses a configuration file.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Toml`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Validates everything and reads the secrets through `env` (the environment, in the binary).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`], [`ConfigError::MissingSecret`].
    pub(crate) fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Resolved, ConfigError> {
        let secret = |field: &str, var: &str| -> Result<String, ConfigError> {
            env(var)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::MissingSecret {
                    field: field.into(),
                    var: var.into(),
                })
        };
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be at least 1"));
        }
        if self.max_models == 0 {
            return Err(invalid("max_models", "must be at least 1"));
        }
        let base_url = self.upstream.base_url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(_) => return Err(invalid("upstream.base_url", "must be an http(s) URL")),
            Err(e) => return Err(invalid("upstream.base_url", e.to_string())),
        }
        let api_key = secret("upstream.api_key_env", &self.upstream.api_key_env)?;
        let timeout = duration(
            "upstream.timeout",
            self.upstream.timeout.as_deref(),
            Duration::from_secs(600),
        )?;
        if timeout.is_zero() {
            return Err(invalid("upstream.timeout", "must be more than 0"));
        }
        if let Backend::Redis { url, prefix } = &self.backend {
            if url.is_empty() {
                return Err(invalid("backend.url", "must not be empty"));
            }
            if prefix.is_empty() {
                return Err(invalid("backend.prefix", "must not be empty"));
            }
        }
        if self.global.is_empty() {
            return Err(invalid(
                "global",
                "set at least one limit: the provider account always has some",
            ));
        }
        let global = self.global.policy("global")?;
        let mut models = BTreeMap::new();
        for (name, limits) in &self.models {
            let field = format!("models.{name}");
            if limits.is_empty() {
                return Err(invalid(field, "set at least one limit"));
            }
            models.insert(name.clone(), limits.policy(&field)?);
        }
        let model_default = match &self.model_default {
            Some(l) if !l.is_empty() => Some(l.policy("model_default")?),
            _ => None,
        };
        let tenant_default = match &self.tenant_default {
            Some(l) if !l.is_empty() => Some(l.policy("tenant_default")?),
            _ => None,
        };
        let default_queue = duration(
            "max_queue_time",
            self.max_queue_time.as_deref(),
            Duration::from_secs(30),
        )?;
        if self.tenants.is_empty() {
            return Err(invalid("tenants", "configure at least one tenant"));
        }
        let mut names = HashSet::new();
        let mut digests = HashSet::new();
        let mut tenants = Vec::with_capacity(self.tenants.len());
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            if t.name.is_empty()
                || !t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(invalid(
                    format!("{at}.name"),
                    "use letters, digits, `-`, `_` or `.`",
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("`{}` is used twice", t.name),
                ));
            }
            let digest = match (&t.key_env, &t.key_sha256) {
                (Some(var), None) => digest(&secret(&format!("{at}.key_env"), var)?),
                (None, Some(hex)) => hex32(&format!("{at}.key_sha256"), hex)?,
                _ => {
                    return Err(invalid(
                        &at,
                        "set exactly one of `key_env` and `key_sha256`",
                    ));
                }
            };
            if !digests.insert(digest) {
                return Err(invalid(
                    format!("{at}.key_env"),
                    "two tenants have the same key",
                ));
            }
            let max_queue_time = match &t.max_queue_time {
                Some(text) => duration(&format!("{at}.max_queue_time"), Some(text), default_queue)?,
                None => default_queue,
            };
            let own = match &t.limits {
                Some(l) if !l.is_empty() => Some(l.policy(&format!("{at}.limits"))?),
                _ => None,
            };
            tenants.push(ResolvedTenant {
                name: t.name.clone(),
                digest,
                priority: t.priority.into(),
                max_queue_time,
                own,
            });
        }
        Ok(Resolved {
            max_body_bytes: self.max_body_bytes,
            settle: self.settle,
            max_models: self.max_models,
            base_url,
            api_key,
            timeout,
            backend: self.backend.clone(),
            global,
            models,
            model_default,
            tenant_default,
            tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [upstream]
        base_url = "http://127.0.0.1:9/v1"
        api_key_env = "UP"
        [global]
        rpm = 10
    "#;

    fn env(var: &str) -> Option<String> {
        match var {
            "UP" => Some("sk-upstream".into()),
            "A" => Some("key-a".into()),
            "B" => Some("key-b".into()),
            _ => None,
        }
    }

    fn resolve(extra: &str) -> Result<Resolved, ConfigError> {
        Config::from_toml(&format!("{extra}\n{BASE}"))?.resolve(&env)
    }

    fn field_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { field, .. } | ConfigError::MissingSecret { field, .. } => field,
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn a_full_configuration_resolves() {
        let r = resolve(
            r#"
            max_queue_time = "2s"
            settle = "usage"
            [models."gpt-4o"]
            tpm = 1000
            [model_default]
            rpm = 5
            [tenant_default]
            rpm = 3
            [[tenants]]
            name = "a"
            key_env = "A"
            priority = "batch"
            [[tenants]]
            name = "b"
            key_sha256 = "0000000000000000000000000000000000000000000000000000000000000001"
            max_queue_time = "0s"
            limits = { tpm = 100, concurrency = 2 }
            "#,
        )
        .unwrap();
        assert_eq!(r.api_key, "sk-upstream");
        assert_eq!(r.settle, SettleMode::Usage);
        assert_eq!(r.tenants[0].digest, digest("key-a"));
        assert_eq!(r.tenants[0].priority, Priority::Batch);
        assert_eq!(r.tenants[0].max_queue_time, Duration::from_secs(2));
        assert!(r.tenants[0].own.is_none());
        assert_eq!(r.tenants[1].max_queue_time, Duration::ZERO);
        assert_eq!(r.tenants[1].digest[31], 1);
        assert!(r.tenants[1].own.is_some());
        assert!(r.models.contains_key("gpt-4o") && r.model_default.is_some());
    }

    #[test]
    fn errors_name_the_field() {
        let tenant = "[[tenants]]\nname = \"a\"\nkey_env = \"A\"\n";
        for (extra, field) in [
            ("", "tenants"),
            (
                "[[tenants]]\nname = \"a\"\nkey_env = \"NOPE\"\n",
                "tenants[0].key_env",
            ),
            (
                "[[tenants]]\nname = \"a b\"\nkey_env = \"A\"\n",
                "tenants[0].name",
            ),
            ("[[tenants]]\nname = \"a\"\n", "tenants[0]"),
            (
                "[[tenants]]\nname = \"a\"\nkey_sha256 = \"xyz\"\n",
                "tenants[0].key_sha256",
            ),
            (
                &format!("{tenant}[[tenants]]\nname = \"a\"\nkey_env = \"B\"\n"),
                "tenants[1].name",
            ),
            (
                &format!("{tenant}[[tenants]]\nname = \"b\"\nkey_env = \"A\"\n"),
                "tenants[1].key_env",
            ),
            (&format!("{tenant}[models.m]\nrpm = 0\n"), "models.m"),
            (
                &format!("max_queue_time = \"soon\"\n{tenant}"),
                "max_queue_time",
            ),
            (
                &format!("{tenant}limits = {{ concurrency = 0 }}\n"),
                "tenants[0].limits",
            ),
        ] {
            let e = resolve(extra).unwrap_err();
            assert_eq!(field_of(e), field, "{extra}");
        }
        let no_global = Config::from_toml(
            "[upstream]\nbase_url = \"http://x/v1\"\napi_key_env = \"UP\"\n[global]\n[[tenants]]\nname = \"a\"\nkey_env = \"A\"\n",
        )
        .unwrap();
        assert_eq!(field_of(no_global.resolve(&env).unwrap_err()), "global");
        let missing_up = Config::from_toml(&BASE.replace("\"UP\"", "\"UNSET\"")).unwrap();
        let e = missing_up.resolve(&env).unwrap_err();
        assert!(e.to_string().contains("UNSET"), "{e}");
        assert_eq!(field_of(e), "upstream.api_key_env");
    }

    #[test]
    fn unknown_fields_and_bad_types_are_toml_errors() {
        let e = Config::from_toml(&format!("{BASE}\nrmp = 3\n")).unwrap_err();
        assert!(e.to_string().contains("rmp"), "{e}");
        let e = Config::from_toml(&BASE.replace("rpm = 10", "rpm = \"ten\"")).unwrap_err();
        assert!(matches!(e, ConfigError::Toml(_)), "{e}");
    }
}
