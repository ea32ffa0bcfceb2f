//! End-to-end tests: the real application (API, outbox dispatcher, job
//! workers) over real HTTP on port 0, against SQLite and against PostgreSQL +
//! Redis. Each scenario body runs on both; `sqlite::` and `postgres::` name
//! the tier.

// Test code: an unwrap that fails is a failing test, which is its purpose.
#![allow(clippy::unwrap_used)]

mod board;
mod chat;
mod faults;
mod fuzz;
mod harness;
mod ingestion;
mod isolation;
mod limits;
mod people;
mod quality;
mod roles;
mod scenarios;
mod spec;
mod visitor;
mod webhooks;
mod widget;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        on_both_backends!(scenarios: $($name),*);
    };
    ($module:ident: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$module::$name(crate::harness::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$module::$name(crate::harness::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    keys_bots_and_tenant_isolation,
    idempotent_creates,
    request_errors_have_one_shape,
    concurrent_updates_conflict_without_gaps,
    replay_rebuilds_identical_rows,
    outbox_survives_a_crash_and_redelivery,
    operations_endpoints,
    event_feed_is_scoped_and_filtered,
    sources_from_texts_qa_and_files,
    site_crawl_refresh_and_robots,
    crawl_survives_a_killed_worker,
    scheduled_refresh,
);

/// Real-world documents through the API, on both tiers.
mod document_tests {
    on_both_backends!(ingestion: letter_spaced_real_pdfs);
}

/// Chat scenarios, on both tiers (`chat_tests::sqlite::...`).
mod chat_tests {
    on_both_backends!(chat: grounded_chat, openai_provider, handoff);
}

/// The visitor side: widget settings, the public API, leads and insights.
mod visitor_tests {
    on_both_backends!(visitor: visitor_api, insights);
}

/// Webhooks to a real receiver, on both tiers.
mod webhook_tests {
    on_both_backends!(
        webhooks: webhooks_deliver_every_event,
        webhook_survives_a_killed_worker,
        deliveries_do_not_hold_up_indexing
    );
}

/// Faults: a worker process killed with SIGKILL (both tiers); Redis
/// restarted and the database unreachable (PostgreSQL + Redis).
mod fault_tests {
    on_both_backends!(
        faults: worker_killed_with_sigkill,
        a_parser_crash_costs_one_page,
        hostile_documents_cannot_stop_parley
    );
    mod postgres_only {
        mod postgres {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_restart_and_database_outage() {
                crate::faults::redis_restart_and_database_outage(crate::harness::Backend::Postgres).await;
            }
        }
    }
}

/// Tenant isolation over every operation of the spec, on both tiers.
mod isolation_tests {
    on_both_backends!(isolation: tenant_isolation_matrix);
}

/// Roles over every operation of the spec, on both tiers.
mod role_tests {
    on_both_backends!(roles: role_matrix);
}

/// People, sessions, invitations and members, on both tiers.
mod people_tests {
    on_both_backends!(
        people: people_and_sessions,
        agent_workflow,
        live_stream,
        availability_and_auto_assignment
    );
}

/// Mutated request bodies against the API, on both tiers.
mod fuzz_tests {
    on_both_backends!(fuzz: json_request_bodies);
}

/// The job dashboard, on both tiers.
mod board_tests {
    on_both_backends!(board: job_dashboard);
}

/// Rate limits: two API instances sharing Redis, and the embedded tier.
mod limit_tests {
    on_both_backends!(
        limits: rate_limits,
        quotas,
        visitor_limits,
        plans,
        slow_request_heads,
        chunked_bodies_are_not_read_before_authentication
    );
}

/// The widget in Debian's Chromium, on the embedded tier (the visitor API
/// it uses is tested on both tiers above).
mod widget_browser {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn widget_in_a_real_browser() {
        crate::widget::widget_in_a_real_browser(crate::harness::Backend::Sqlite).await;
    }
}

/// The whole Rust Book is embedded (about two minutes on 2 cores), so it runs
/// on the embedded tier; the site scenario above covers both tiers.
mod sqlite_book {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rust_book_crawl() {
        crate::ingestion::rust_book_crawl(crate::harness::Backend::Sqlite).await;
    }
}
