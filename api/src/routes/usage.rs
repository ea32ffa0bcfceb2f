//! `/api/v1/usage`: what the organization used against its plan.

use chrono::{DateTime, Utc};
use parley_domain::StoreError;
use parley_domain::usage;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::security::AdminAuth;
use crate::state::AppState;

pub struct UsageApi {
    pub state: Option<AppState>,
}

/// One quota: how much is used of how much.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Allowance {
    /// Used so far.
    pub used: u64,
    /// What the plan allows.
    pub limit: u64,
    /// `limit - used`, never below 0.
    pub remaining: u64,
}

/// The organization's use against its plan.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Usage {
    /// The plan the organization is on (`default` unless an operator chose another).
    pub plan: String,
    /// The calendar month (UTC) the message count is for, `YYYY-MM`.
    pub period: String,
    /// When the message count starts again from 0.
    pub resets_at: DateTime<Utc>,
    /// Chat messages this month.
    pub messages: Allowance,
    /// Bots of the organization.
    pub bots: Allowance,
    /// Sources of the organization, across its bots.
    pub sources: Allowance,
}

fn allowance(used: u64, limit: u64) -> Allowance {
    Allowance {
        used,
        limit,
        remaining: limit.saturating_sub(used),
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Usage")]
impl UsageApi {
    /// Usage against the plan
    ///
    /// Chat messages this month, bots and sources, each with the plan's limit.
    /// Past a limit, the request that would exceed it gets `429 QUOTA_EXCEEDED`.
    ///
    /// Role: `admin` or `owner`.
    #[oai(path = "/usage", method = "get", operation_id = "get_usage")]
    async fn usage(&self, auth: AdminAuth) -> Result<Json<Usage>, ApiError> {
        let state = live(&self.state)?;
        let org_id = auth.0.org_id;
        let now = state.clock.now();
        let (plan_name, plan) = state.org_plan(org_id).await?;
        let db = |e| ApiError::from(StoreError::Db(e));
        let messages = parley_domain::store::usage::messages_used(&state.store, org_id, now)
            .await
            .map_err(db)?;
        let bots = parley_domain::store::usage::bots_used(&state.store, org_id)
            .await
            .map_err(db)?;
        let sources = parley_domain::store::usage::sources_used(&state.store, org_id)
            .await
            .map_err(db)?;
        Ok(Json(Usage {
            plan: plan_name,
            period: usage::period(now),
            resets_at: usage::next_period_start(now),
            messages: allowance(messages, plan.messages_per_month),
            bots: allowance(bots, plan.bots),
            sources: allowance(sources, plan.sources),
        }))
    }
}
