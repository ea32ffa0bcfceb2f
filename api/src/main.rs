//! The `parley` command.

use anyhow::Context;
use clap::{Parser, Subcommand};
use parley_api::app::{Application, Roles, connect_db, open_store, shutdown_signal};
use parley_api::{admin, config, spec, telemetry};
use parley_migration::{Migrator, MigratorTrait};

#[derive(Parser)]
#[command(name = "parley", version, about = "Parley: self-hosted AI customer-support chatbots")]
struct Cli {
    /// A TOML configuration file (default: ./parley.toml when present, or $PARLEY_CONFIG).
    #[arg(long, global = true)]
    config: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the job workers in one process (embedded default: one SQLite file).
    Serve,
    /// Run only the API (production: several may run against PostgreSQL + Redis).
    Api,
    /// Run only the outbox dispatcher and the job workers.
    Worker,
    /// Apply pending database migrations.
    Migrate,
    /// Rebuild read models from the event log: all of them, or the one named.
    Replay {
        /// One projection: orgs, api_keys or bots.
        #[arg(long)]
        projection: Option<String>,
    },
    /// Print the OpenAPI spec (opens no database).
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<String>,
    },
    /// Measure this machine: `parley bench ingest` (ingestion throughput), `parley bench retrieval` (quality and latency).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Crawl, parse and embedding throughput, and time from source added to ready.
    Ingest {
        /// The Rust Book's HTML folder (default: the installed toolchain's).
        #[arg(long)]
        book: Option<std::path::PathBuf>,
        /// A folder with pdf/ and docx/ subfolders of test documents.
        #[arg(long, default_value = "../shared/data/docs")]
        docs: std::path::PathBuf,
        /// Chunks to embed.
        #[arg(long, default_value_t = 320)]
        chunks: usize,
    },
    /// Documents made to hurt a parser (bombs, deep nesting), parsed as the worker does, with their cost.
    Hostile,
    /// The search index cache at its budget with more bots than fit.
    IndexCache {
        /// Bots to search in turn.
        #[arg(long, default_value_t = 10)]
        bots: usize,
        /// Chunks per bot.
        #[arg(long, default_value_t = 10_000)]
        chunks: usize,
        /// The cache's budget in MB.
        #[arg(long, default_value_t = 128)]
        budget_mb: usize,
    },
    /// Delay from an event appended by one API process to its arrival on
    /// live streams held by another (PostgreSQL + Redis).
    Stream {
        /// A PostgreSQL database URL whose server may create a throwaway database.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Open streams on the reading process.
        #[arg(long, default_value_t = 200)]
        streams: usize,
        /// Events appended through the writing process.
        #[arg(long, default_value_t = 1000)]
        events: usize,
    },
    /// Resident memory of one `parley serve` crawling a generated local site, by stage.
    Crawl {
        /// Pages on the site.
        #[arg(long, default_value_t = 2000)]
        pages: usize,
        /// Megabytes per page.
        #[arg(long, default_value_t = 2)]
        page_mb: usize,
    },
    /// Time to the first SSE byte and to [DONE] for the extractive provider.
    Chat {
        /// The Rust Book's HTML folder (default: the installed toolchain's).
        #[arg(long)]
        book: Option<std::path::PathBuf>,
        /// Rounds of the 10 questions (after one warm-up round).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// PDF text against poppler's pdftotext: word precision, recall, F1, single-letter words, speed.
    Pdf {
        /// Folders of PDFs; a `pdftotext/<name>.txt` beside a file is its reference, else pdftotext runs.
        #[arg(long = "dir", default_values = ["../shared/data/docs/realworld", "../shared/data/docs/pdf"])]
        dirs: Vec<std::path::PathBuf>,
        /// Write each file's text (Markdown) to this folder.
        #[arg(long)]
        dump: Option<std::path::PathBuf>,
    },
    /// Which document answers: the right document in the top 3 over documents that share one vocabulary.
    Documents {
        /// The folder of documents.
        #[arg(long, default_value = "../shared/data/docs/realworld")]
        dir: std::path::PathBuf,
        /// Questions (JSON lines with question, doc, split).
        #[arg(long, default_value = "tests/data/usfed-questions.jsonl")]
        questions: std::path::PathBuf,
        /// Only files whose name starts with this.
        #[arg(long, default_value = "usfed-")]
        prefix: String,
    },
    /// Answer or refuse: answerable questions refused and off-topic ones answered, over a crawled site.
    Answerability {
        /// The site's folder (default: the installed toolchain's Rust Book).
        #[arg(long)]
        site: Option<std::path::PathBuf>,
        /// Questions (JSON lines: question, kind, pages).
        #[arg(long, default_value = "tests/data/answerability/rust-book.jsonl")]
        questions: std::path::PathBuf,
        /// The pages to index, one path a line (default: every page of the folder but stubs).
        #[arg(long)]
        pages: Option<std::path::PathBuf>,
        /// Fit the gate's weights on these questions and print them (training sets only).
        #[arg(long)]
        fit: bool,
    },
    /// The answerability gate fitted on `bench answerability` dumps of training sites, measured on every dump given.
    Gate {
        /// Dumps (PARLEY_BENCH_DUMP) of training sites to fit on.
        #[arg(long = "fit", required = true)]
        fit: Vec<std::path::PathBuf>,
        /// Dumps of held-out sites, only measured.
        #[arg(long = "measure")]
        measure: Vec<std::path::PathBuf>,
        /// Relevance as the best of the first K passages' cross-encoder scores (the dump holds five).
        #[arg(long)]
        passages: Option<usize>,
    },
    /// SciFact nDCG@10 and recall@100 (BM25, vector, hybrid) and search latency by index size.
    Retrieval {
        /// The BEIR SciFact folder (corpus.jsonl, queries.jsonl, qrels/).
        #[arg(long, default_value = "../shared/data/scifact")]
        scifact: std::path::PathBuf,
        /// Index sizes (chunks) to time searches at.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        sizes: Vec<usize>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an organization and print its id and first API key (shown once).
    CreateOrg {
        #[arg(long)]
        name: String,
        /// A plan defined in the configuration (`plans.<name>`); default: the default plan.
        #[arg(long)]
        plan: Option<String>,
        /// Make the person with this email the first owner (registered if
        /// new). Prints a one-time link that sets their password, unless
        /// `--password-stdin` gives it.
        #[arg(long)]
        owner_email: Option<String>,
        /// Read the owner's password from standard input (one line).
        #[arg(long, requires = "owner_email")]
        password_stdin: bool,
    },
    /// Print a one-time link (valid 24 hours) that sets a person's password.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
    /// Put an organization on another plan defined in the configuration.
    SetPlan {
        #[arg(long)]
        org: uuid::Uuid,
        #[arg(long)]
        plan: String,
    },
}

fn main() {
    // A sandboxed parser (see `parley_worker::ingest::parse::sandbox`): no
    // runtime, no configuration, one document from standard input.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(parley_worker::ingest::parse::sandbox::SUBCOMMAND) {
        std::process::exit(parley_worker::ingest::parse::sandbox::child_main(&args[1..]));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    if let Err(e) = runtime.block_on(run(Cli::parse())) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi { output } = &cli.command {
        let spec = spec::spec_json();
        match output {
            Some(path) => std::fs::write(path, spec).with_context(|| format!("cannot write {path}"))?,
            None => {
                use std::io::Write;
                // A closed pipe (`parley openapi | head`) is not an error.
                let _ = std::io::stdout().write_all(spec.as_bytes());
            }
        }
        return Ok(());
    }
    let settings = config::load(cli.config.as_deref())?;
    telemetry::init(settings.log_format, &settings.log_level);
    match cli.command {
        Command::Serve => serve(settings, Roles::ALL).await,
        Command::Api => serve(settings, Roles::API).await,
        Command::Worker => serve(settings, Roles::WORKER).await,
        Command::Migrate => {
            let db = connect_db(&settings).await?;
            let pending = Migrator::get_pending_migrations(&db).await?.len();
            Migrator::up(&db, None).await?;
            println!("{pending} migrations applied; the schema is current");
            Ok(())
        }
        Command::Replay { projection } => {
            let store = open_store(&settings, false).await?;
            if let Some(name) = &projection
                && !store.projections().iter().any(|p| p.name() == name)
            {
                let names: Vec<_> = store.projections().iter().map(|p| p.name()).collect();
                anyhow::bail!("unknown projection `{name}`; known: {}", names.join(", "));
            }
            let (rebuilt, events) = store.replay(projection.as_deref()).await?;
            println!("rebuilt {} from {events} events", rebuilt.join(", "));
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::SetPlan { org, plan },
        } => {
            settings.check_plan(&plan)?;
            let store = open_store(&settings, settings.is_sqlite()).await?;
            admin::set_plan(&store, org, &plan).await?;
            println!("org_id={org}");
            println!("plan={plan}");
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::CreateOrg {
                    name,
                    plan,
                    owner_email,
                    password_stdin,
                },
        } => {
            if let Some(plan) = &plan {
                settings.check_plan(plan)?;
            }
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("cannot read the password from standard input")?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            // Checked before anything is stored.
            if let Some(email) = &owner_email {
                let email = parley_domain::aggregates::person::normalize_email(email)
                    .map_err(|e| anyhow::anyhow!("--owner-email: {e}"))?;
                if let Some(password) = &password {
                    parley_domain::aggregates::person::check_password(password, &email)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
            let store = open_store(&settings, settings.is_sqlite()).await?;
            let created = admin::create_org_on(&store, &name, plan.as_deref()).await?;
            println!("org_id={}", created.org_id);
            println!("api_key={}", created.api_key);
            if let Some(email) = &owner_email {
                let base = parley_api::state::public_base(&settings, None);
                let owner = admin::add_owner(&store, &base, created.org_id, email, password.as_deref()).await?;
                println!("owner_id={}", owner.person_id);
                if let Some(link) = owner.link {
                    println!("owner_password_link={}", link.url);
                    eprintln!(
                        "The link sets the owner's password once, until {}.",
                        link.expires_at.to_rfc3339()
                    );
                }
            }
            eprintln!("Store the API key now: it is not shown again.");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::ResetPassword { email },
        } => {
            let store = open_store(&settings, settings.is_sqlite()).await?;
            let base = parley_api::state::public_base(&settings, None);
            let link = admin::reset_password(&store, &base, &email).await?;
            println!("password_link={}", link.url);
            eprintln!(
                "The link sets the password once, until {}; earlier links no longer work.",
                link.expires_at.to_rfc3339()
            );
            Ok(())
        }
        Command::Bench {
            command: BenchCommand::Ingest { book, docs, chunks },
        } => parley_api::bench::ingest(&settings, parley_api::bench::BenchInputs { book, docs, chunks }).await,
        Command::Bench {
            command: BenchCommand::Hostile,
        } => parley_api::bench::hostile::hostile(&settings).await,
        Command::Bench {
            command:
                BenchCommand::IndexCache {
                    bots,
                    chunks,
                    budget_mb,
                },
        } => parley_api::bench::index_cache::index_cache(&settings, bots, chunks, budget_mb).await,
        Command::Bench {
            command: BenchCommand::Crawl { pages, page_mb },
        } => parley_api::bench::crawl::crawl(pages, page_mb).await,
        Command::Bench {
            command:
                BenchCommand::Stream {
                    postgres,
                    redis,
                    streams,
                    events,
                },
        } => parley_api::bench::stream::stream(&postgres, &redis, streams, events).await,
        Command::Bench {
            command: BenchCommand::Chat { book, rounds },
        } => parley_api::bench::chat(&settings, book, rounds).await,
        Command::Bench {
            command: BenchCommand::Pdf { dirs, dump },
        } => parley_api::bench::pdf::pdf(&dirs, dump.as_deref()),
        Command::Bench {
            command: BenchCommand::Documents { dir, questions, prefix },
        } => parley_api::bench::documents::documents(&settings, dir, questions, prefix).await,
        Command::Bench {
            command:
                BenchCommand::Answerability {
                    site,
                    questions,
                    pages,
                    fit,
                },
        } => parley_api::bench::answerability::answerability(&settings, site, questions, pages, fit).await,
        Command::Bench {
            command: BenchCommand::Gate { fit, measure, passages },
        } => parley_api::bench::gate::gate(&fit, &measure, passages),
        Command::Bench {
            command: BenchCommand::Retrieval { scifact, sizes },
        } => parley_api::bench::retrieval::retrieval(&settings, scifact, sizes).await,
        Command::Openapi { .. } => Ok(()),
    }
}

async fn serve(settings: config::Settings, roles: Roles) -> anyhow::Result<()> {
    let app = Application::build(settings, roles).await?;
    if let Some(port) = app.port() {
        tracing::info!("listening on port {port}; Swagger UI at /docs");
    }
    app.run_until(shutdown_signal()).await
}
