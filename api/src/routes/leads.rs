//! `/api/v1/leads`: visitors' contact details, listed, read and exported.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use parley_domain::store::entities::leads;
use parley_domain::{ErrorCode, store::read};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::tags::ApiTags;
use crate::access::live;
use crate::error::ApiError;
use crate::files::{CsvFile, csv_cell};
use crate::security::AgentAuth;

pub struct LeadsApi {
    pub state: Option<AppState>,
}

use crate::state::AppState;

/// Most leads one export holds.
const MAX_EXPORTED: u64 = 50_000;

/// A visitor's contact details.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LeadInfo {
    /// The lead (one per bot and email address, or phone number without one).
    pub id: Uuid,
    /// The bot the visitor talked to.
    pub bot_id: Uuid,
    /// Name.
    pub name: Option<String>,
    /// Email address (validated).
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Custom fields of the bot's lead form.
    pub fields: BTreeMap<String, String>,
    /// The visitor (their widget visitor token).
    pub visitor_id: Option<String>,
    /// The latest conversation the details were left in.
    pub conversation_id: Option<Uuid>,
    /// How the lead first came: `before_chat`, `handoff`, `form` or `api`.
    pub source: String,
    /// When the details were first left.
    pub created_at: DateTime<Utc>,
    /// When details last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<leads::Model> for LeadInfo {
    fn from(l: leads::Model) -> Self {
        LeadInfo {
            id: l.id,
            bot_id: l.bot_id,
            name: l.name,
            email: l.email,
            phone: l.phone,
            fields: serde_json::from_value(l.fields).unwrap_or_default(),
            visitor_id: l.visitor_id,
            conversation_id: l.conversation_id,
            source: l.source,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// A page of leads.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LeadList {
    /// Newest first.
    pub items: Vec<LeadInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Leads")]
impl LeadsApi {
    /// List leads
    ///
    /// Contact details visitors left, newest first, filtered by bot, email,
    /// conversation and when they were first left.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/leads", method = "get", operation_id = "list_leads")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: AgentAuth,
        /// Only this bot's leads.
        bot_id: Query<Option<Uuid>>,
        /// Only the lead with this email address (any case).
        email: Query<Option<String>>,
        /// Only leads whose latest conversation is this one.
        conversation_id: Query<Option<Uuid>>,
        /// Only leads first left at or after this time (RFC 3339).
        created_after: Query<Option<DateTime<Utc>>>,
        /// Only leads first left before this time (RFC 3339).
        created_before: Query<Option<DateTime<Utc>>>,
        /// `next_cursor` of the previous page; a lead that no longer
        /// exists is `400 INVALID_REQUEST`.
        cursor: Query<Option<Uuid>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<LeadList>, ApiError> {
        let state = live(&self.state)?;
        let filter = read::LeadFilter {
            bot_id: bot_id.0,
            email: email.0,
            conversation_id: conversation_id.0,
            created_after: created_after.0,
            created_before: created_before.0,
        };
        let after = match cursor.0 {
            Some(cursor) => Some(read::lead(&state.store, auth.0.org_id, cursor).await?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "`cursor` is not a lead of this organization (it was erased?): \
                             list again from the first page",
                )
            })?),
            None => None,
        };
        let page = read::leads(
            &state.store,
            auth.0.org_id,
            &filter,
            after.as_ref(),
            limit.0.unwrap_or(20),
        )
        .await?;
        Ok(Json(LeadList {
            items: page.items.into_iter().map(LeadInfo::from).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Export leads as CSV
    ///
    /// Every lead first left in `[from, to)`, optionally of one bot, as one
    /// CSV file: a column per built-in field, one per custom field found.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/leads/export", method = "get", operation_id = "export_leads")]
    async fn export(
        &self,
        auth: AgentAuth,
        /// Only this bot's leads.
        bot_id: Query<Option<Uuid>>,
        /// Leads first left at or after this time (RFC 3339).
        from: Query<Option<DateTime<Utc>>>,
        /// Leads first left before this time (RFC 3339).
        to: Query<Option<DateTime<Utc>>>,
    ) -> Result<CsvFile, ApiError> {
        let state = live(&self.state)?;
        if let (Some(from), Some(to)) = (from.0, to.0)
            && to <= from
        {
            return Err(ApiError::new(ErrorCode::InvalidRequest, "`to` must be after `from`"));
        }
        let filter = read::LeadFilter {
            bot_id: bot_id.0,
            created_after: from.0,
            created_before: to.0,
            ..Default::default()
        };
        let page = read::leads(&state.store, auth.0.org_id, &filter, None, MAX_EXPORTED).await?;
        if page.next_cursor.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("more than {MAX_EXPORTED} leads: export a shorter range"),
            ));
        }
        let leads: Vec<LeadInfo> = page.items.into_iter().map(LeadInfo::from).collect();
        let custom: std::collections::BTreeSet<String> = leads.iter().flat_map(|l| l.fields.keys().cloned()).collect();
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = [
            "lead_id",
            "bot_id",
            "name",
            "email",
            "phone",
            "source",
            "visitor_id",
            "conversation_id",
            "created_at",
            "updated_at",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        header.extend(custom.iter().map(|k| format!("field:{k}")));
        writer.write_record(&header).map_err(ApiError::internal)?;
        for l in &leads {
            let cell = |v: &Option<String>| csv_cell(v.as_deref().unwrap_or_default());
            let mut row = vec![
                l.id.to_string(),
                l.bot_id.to_string(),
                cell(&l.name),
                cell(&l.email),
                cell(&l.phone),
                l.source.clone(),
                cell(&l.visitor_id),
                l.conversation_id.map(|c| c.to_string()).unwrap_or_default(),
                l.created_at.to_rfc3339(),
                l.updated_at.to_rfc3339(),
            ];
            row.extend(
                custom
                    .iter()
                    .map(|k| csv_cell(l.fields.get(k).map_or("", String::as_str))),
            );
            writer.write_record(&row).map_err(ApiError::internal)?;
        }
        let body = writer.into_inner().map_err(ApiError::internal)?;
        Ok(CsvFile {
            body: body.into(),
            file_name: "leads.csv".into(),
        })
    }

    /// Get a lead
    ///
    /// One lead of your organization, with its custom fields.
    ///
    /// Role: `agent` or higher.
    #[oai(path = "/leads/:lead_id", method = "get", operation_id = "get_lead")]
    async fn get(&self, auth: AgentAuth, lead_id: Path<Uuid>) -> Result<Json<LeadInfo>, ApiError> {
        let state = live(&self.state)?;
        let lead = read::lead(&state.store, auth.0.org_id, lead_id.0)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::LeadNotFound, "lead not found"))?;
        Ok(Json(lead.into()))
    }
}
