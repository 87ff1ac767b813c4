//! The three levels of budgets (tenant, model, global), built on the configured backend, and
//! the admission of a request across all of them.
//!
//! **Order of the waits.** A request takes its tenant's budget first, then its model's, then the
//! global one, waiting at each in that budget's own fair line (first come, first served within a
//! priority class) for at most what is left of the tenant's `max_queue_time`. So the only
//! capacity ever held while waiting is capacity *less* shared than the one waited on: a tenant's
//! own (only that tenant could use it) while it waits on a model or the account, and a model's
//! while it waits on the account, where every user of that model would queue anyway. A shared
//! budget is never held while a tenant's own limit makes the request wait, which is the defect of
//! taking them in any other order: one throttled tenant would sit on global capacity others could
//! use. If any level refuses (its turn would come after the deadline, or at once under
//! `max_queue_time = 0`), everything taken so far is given back, newest first, which restores each
//! budget exactly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ratelimit_adaptive::{AdaptiveConfig, AdaptiveLimiter};
use ratelimit_client::proxy::Feedback;
use ratelimit_core::{Cost, Decision, Policy};
use ratelimit_limiter::{AcquireError, BackendError, Limiter, Permit, Priority, Request};
use ratelimit_memory::{KeyedConfig, KeyedLimiter, MemoryLimiter};
use ratelimit_redis::{RedisConfig, RedisLimiter};
use tokio::time::Instant;

use crate::config::{Backend, Resolved};
use crate::error::GatewayError;

/// Which level a budget belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LevelKind {
    /// The tenant's own.
    Tenant,
    /// The model's.
    Model,
    /// The whole account's.
    Global,
}

impl LevelKind {
    /// Its name in bodies, headers and metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Model => "model",
            Self::Global => "global",
        }
    }
}

/// One budget a request must fit: a limiter and the key of the budget in it.
#[derive(Clone)]
pub(crate) struct Level {
    pub(crate) kind: LevelKind,
    pub(crate) limiter: Arc<dyn Limiter>,
    pub(crate) key: String,
}

/// Why a request was not admitted.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The level that refused.
    pub(crate) kind: LevelKind,
    /// Its reason.
    pub(crate) error: AcquireError,
}

/// Every budget of the gateway.
pub(crate) struct Budgets {
    global: Arc<AdaptiveLimiter>,
    /// The provider's answers for models without a budget of their own, fed to the global budget.
    feedback: Feedback,
    /// The budgets of the models configured by name, each learning from its own answers.
    models: HashMap<String, (Arc<dyn Limiter>, Feedback)>,
    model_default: Option<Arc<dyn Limiter>>,
    /// Per tenant (by index): its budget and the key in it, if it is limited.
    tenants: Vec<Option<(Arc<dyn Limiter>, String)>>,
}

/// Makes the limiters of one backend.
struct Factory<'a> {
    backend: &'a Backend,
}

impl Factory<'_> {
    /// A limiter for budget `name`; `keys` bounds the keys it holds when it is keyed.
    async fn make(
        &self,
        name: &str,
        policy: Policy,
        keys: Option<usize>,
    ) -> Result<Arc<dyn Limiter>, GatewayError> {
        Ok(match self.backend {
            Backend::Memory => match keys {
                Some(max_keys) => Arc::new(KeyedLimiter::new(policy, KeyedConfig { max_keys })),
                None => Arc::new(MemoryLimiter::new(policy)),
            },
            Backend::Redis { url, prefix } => {
                let mut config = RedisConfig::new(name);
                config.prefix.clone_from(prefix);
                let limiter = RedisLimiter::connect(url.as_str(), policy, config)
                    .await
                    .map_err(|source| GatewayError::Backend {
                        budget: name.to_owned(),
                        source,
                    })?;
                Arc::new(limiter)
            }
        })
    }
}

impl Budgets {
    /// Builds every budget of `resolved` on its backend.
    pub(crate) async fn build(resolved: &Resolved) -> Result<Self, GatewayError> {
        let factory = Factory {
            backend: &resolved.backend,
        };
        let inner = factory
            .make("global", resolved.global.clone(), None)
            .await?;
        let global = adaptive(inner, &resolved.global, "global")?;
        let feedback = Feedback::new(Arc::clone(&global), "");
        let mut models = HashMap::new();
        for (name, policy) in &resolved.models {
            let inner = factory
                .make(&format!("model:{name}"), policy.clone(), None)
                .await?;
            let limiter = adaptive(inner, policy, &format!("models.{name}"))?;
            let feedback = Feedback::new(Arc::clone(&limiter), "");
            models.insert(name.clone(), (limiter as Arc<dyn Limiter>, feedback));
        }
        let model_default = match &resolved.model_default {
            Some(policy) => Some(
                factory
                    .make("models", policy.clone(), Some(resolved.max_models))
                    .await?,
            ),
            None => None,
        };
        let shared = match &resolved.tenant_default {
            Some(policy) => Some(
                factory
                    .make("tenants", policy.clone(), Some(resolved.tenants.len()))
                    .await?,
            ),
            None => None,
        };
        let mut tenants = Vec::with_capacity(resolved.tenants.len());
        for tenant in &resolved.tenants {
            tenants.push(match &tenant.own {
                Some(policy) => Some((
                    factory
                        .make(&format!("tenant:{}", tenant.name), policy.clone(), None)
                        .await?,
                    String::new(),
                )),
                None => shared
                    .as_ref()
                    .map(|l| (Arc::clone(l), tenant.name.clone())),
            });
        }
        Ok(Self {
            global,
            feedback,
            models,
            model_default,
            tenants,
        })
    }

    /// The budgets a request of `tenant` for `model` must fit, in the order they are taken.
    pub(crate) fn levels(&self, tenant: usize, model: Option<&str>) -> Vec<Level> {
        let mut levels = Vec::with_capacity(3);
        if let Some(Some((limiter, key))) = self.tenants.get(tenant) {
            levels.push(Level {
                kind: LevelKind::Tenant,
                limiter: Arc::clone(limiter),
                key: key.clone(),
            });
        }
        if let Some(model) = model {
            if let Some((limiter, _)) = self.models.get(model) {
                levels.push(Level {
                    kind: LevelKind::Model,
                    limiter: Arc::clone(limiter),
                    key: String::new(),
                });
            } else if let Some(limiter) = &self.model_default {
                levels.push(Level {
                    kind: LevelKind::Model,
                    limiter: Arc::clone(limiter),
                    key: model.to_owned(),
                });
            }
        }
        levels.push(Level {
            kind: LevelKind::Global,
            limiter: Arc::clone(&self.global) as Arc<dyn Limiter>,
            key: String::new(),
        });
        levels
    }

    /// Where the provider's answer to a request of `model` goes: the model's own budget when it
    /// is configured by name (a provider's limits and headers are per model), the global budget
    /// otherwise; with the index in `levels` of the level whose grant it concerns.
    pub(crate) fn feedback(&self, model: &str, levels: &[Level]) -> (usize, &Feedback) {
        if let Some((_, feedback)) = self.models.get(model) {
            if let Some(at) = levels.iter().position(|l| l.kind == LevelKind::Model) {
                return (at, feedback);
            }
        }
        (levels.len().saturating_sub(1), &self.feedback)
    }

    /// Takes `cost` from every level (see the module docs for the order), waiting at most
    /// `max_wait` in all; all or nothing. The permits come in the order of `levels`: the global
    /// one is last.
    pub(crate) async fn admit(
        levels: &[Level],
        cost: Cost,
        priority: Priority,
        max_wait: Duration,
    ) -> Result<Vec<Permit>, Refusal> {
        let started = Instant::now();
        let mut permits: Vec<Permit> = Vec::with_capacity(levels.len());
        for level in levels {
            let request = Request::new(cost).key(&level.key).priority(priority);
            let result = if max_wait.is_zero() {
                level.limiter.try_acquire(request).await
            } else {
                let left = max_wait.saturating_sub(started.elapsed());
                level.limiter.acquire_timeout(request, left).await
            };
            match result {
                Ok(permit) => permits.push(permit),
                Err(error) => {
                    give_back(permits).await;
                    return Err(Refusal {
                        kind: level.kind,
                        error,
                    });
                }
            }
        }
        Ok(permits)
    }

    /// The state of every level, in order.
    pub(crate) async fn status(levels: &[Level]) -> Result<Vec<Decision>, BackendError> {
        let mut out = Vec::with_capacity(levels.len());
        for level in levels {
            out.push(level.limiter.status(&level.key).await?);
        }
        Ok(out)
    }
}

/// `inner` with the adaptive layer, which follows the provider's headers and 429s.
fn adaptive(
    inner: Arc<dyn Limiter>,
    policy: &Policy,
    field: &str,
) -> Result<Arc<AdaptiveLimiter>, GatewayError> {
    AdaptiveLimiter::new(inner, policy, AdaptiveConfig::default())
        .map(Arc::new)
        .map_err(|e| {
            GatewayError::Config(crate::ConfigError::Invalid {
                field: field.into(),
                reason: e.to_string(),
            })
        })
}

/// Gives back grants, newest first.
pub(crate) async fn give_back(permits: Vec<Permit>) {
    for permit in permits.into_iter().rev() {
        if let Err(e) = permit.cancel().await {
            tracing::debug!(error = %e, "could not give a grant back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(kind: LevelKind, limiter: Arc<dyn Limiter>) -> Level {
        Level {
            kind,
            limiter,
            key: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tenant_waiting_on_its_own_limit_holds_nothing_shared() {
        let rpm = |n| Policy::builder().requests_per_minute(n).build().unwrap();
        let global: Arc<dyn Limiter> = Arc::new(MemoryLimiter::new(rpm(2)));
        let tenant_a: Arc<dyn Limiter> = Arc::new(MemoryLimiter::new(rpm(1)));
        let tenant_b: Arc<dyn Limiter> = Arc::new(MemoryLimiter::new(rpm(10)));
        let a = [
            level(LevelKind::Tenant, Arc::clone(&tenant_a)),
            level(LevelKind::Global, Arc::clone(&global)),
        ];
        let b = [
            level(LevelKind::Tenant, tenant_b),
            level(LevelKind::Global, Arc::clone(&global)),
        ];
        let one = Cost::ONE_REQUEST;
        let first = Budgets::admit(&a, one, Priority::Interactive, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        // A is over its own limit: refused by its tenant level, without touching the global one.
        let refused = Budgets::admit(&a, one, Priority::Interactive, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(refused.kind, LevelKind::Tenant);
        assert!(refused.error.retry_after().unwrap() > Duration::from_secs(50));
        // So B still gets the global budget's second request at once.
        let b1 = Budgets::admit(&b, one, Priority::Interactive, Duration::ZERO).await;
        assert!(b1.is_ok());
        // And the global budget is now spent: B's next is refused there, and gives back its tenant
        // grant (B's own budget is whole again).
        let refused = Budgets::admit(&b, one, Priority::Interactive, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(refused.kind, LevelKind::Global);
        let b_state = Budgets::status(&b[..1]).await.unwrap();
        assert_eq!(b_state[0].limits()[0].status.remaining, 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_fits_the_queue_time_is_served_and_one_that_does_not_is_refused_at_once() {
        let policy = Policy::builder().requests_per_minute(60).build().unwrap();
        let limiter: Arc<dyn Limiter> = Arc::new(MemoryLimiter::new(policy));
        let levels = [level(LevelKind::Global, limiter)];
        let mut held = Vec::new();
        for _ in 0..60 {
            held.push(
                Budgets::admit(&levels, Cost::ONE_REQUEST, Priority::Batch, Duration::ZERO)
                    .await
                    .unwrap(),
            );
        }
        let started = Instant::now();
        let refused = Budgets::admit(
            &levels,
            Cost::ONE_REQUEST,
            Priority::Batch,
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(refused.error.retry_after(), Some(Duration::from_secs(1)));
        let served = Budgets::admit(
            &levels,
            Cost::ONE_REQUEST,
            Priority::Batch,
            Duration::from_secs(2),
        )
        .await;
        assert!(served.is_ok());
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
