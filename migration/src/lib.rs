//! Schema migrations. They run on SQLite and PostgreSQL alike; one migration per file.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_event_log;
mod m20261122_000002_core_projections;
mod m20261122_000003_knowledge;
mod m20261122_000004_conversations;
mod m20261122_000005_usage;
mod m20261122_000006_conversation_tags;
mod m20261122_000007_feedback;
mod m20261130_000008_visitor;
mod m20261130_000009_leads;
mod m20261130_000010_webhooks;
mod m20261130_000011_bot_rate_limit;
mod m20261130_000012_org_plans;
mod m20261205_000013_key_roles;
mod m20261205_000014_people;
mod m20261205_000015_agent_workflow;
mod m20261205_000016_satisfaction;
mod m20261205_000017_availability;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_event_log::Migration),
            Box::new(m20261122_000002_core_projections::Migration),
            Box::new(m20261122_000003_knowledge::Migration),
            Box::new(m20261122_000004_conversations::Migration),
            Box::new(m20261122_000005_usage::Migration),
            Box::new(m20261122_000006_conversation_tags::Migration),
            Box::new(m20261122_000007_feedback::Migration),
            Box::new(m20261130_000008_visitor::Migration),
            Box::new(m20261130_000009_leads::Migration),
            Box::new(m20261130_000010_webhooks::Migration),
            Box::new(m20261130_000011_bot_rate_limit::Migration),
            Box::new(m20261130_000012_org_plans::Migration),
            Box::new(m20261205_000013_key_roles::Migration),
            Box::new(m20261205_000014_people::Migration),
            Box::new(m20261205_000015_agent_workflow::Migration),
            Box::new(m20261205_000016_satisfaction::Migration),
            Box::new(m20261205_000017_availability::Migration),
        ]
    }
}
