//! Stored content and the search index: uploaded and fetched bytes (blobs,
//! addressed by SHA-256), the documents of each source, and their chunks with
//! embeddings. Derived data: written by workers, never by projections.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::entities::{blobs, chunk_sets, chunks, source_documents};
use crate::store::{Store, now};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Stores bytes once per content; returns their hash. Bytes stored before
/// get a fresh `created_at`, so that garbage collection, which takes only
/// unreferenced blobs older than its cut-off, cannot delete them between
/// this write and the reference the caller is about to record.
pub async fn put_blob(store: &Store, org_id: Uuid, bytes: &[u8]) -> Result<String, DbErr> {
    let hash = sha256_hex(bytes);
    let row = blobs::ActiveModel {
        hash: Set(hash.clone()),
        org_id: Set(org_id),
        size: Set(bytes.len() as i64),
        bytes: Set(bytes.to_vec()),
        created_at: Set(now()),
    };
    blobs::Entity::insert(row)
        .on_conflict(
            OnConflict::column(blobs::Column::Hash)
                .update_column(blobs::Column::CreatedAt)
                .to_owned(),
        )
        .exec_without_returning(store.db())
        .await?;
    Ok(hash)
}

pub async fn get_blob(store: &Store, hash: &str) -> Result<Option<Vec<u8>>, DbErr> {
    Ok(blobs::Entity::find_by_id(hash.to_owned())
        .one(store.db())
        .await?
        .map(|b| b.bytes))
}

/// A document a fetch step stored (failures travel as page records instead).
pub struct FetchedDoc {
    pub doc_key: String,
    pub url: Option<String>,
    pub title: Option<String>,
    pub content_type: String,
    /// The blob holding its bytes.
    pub raw_hash: String,
}

/// Records a fetched document for `run_id`, keeping its parsed text (and
/// what was indexed) when the raw content did not change.
pub async fn record_fetched(store: &Store, source_id: Uuid, run_id: Uuid, doc: FetchedDoc) -> Result<(), DbErr> {
    let existing = source_documents::Entity::find_by_id((source_id, doc.doc_key.clone()))
        .one(store.db())
        .await?;
    let unchanged = existing
        .as_ref()
        .is_some_and(|e| e.raw_hash.as_deref() == Some(doc.raw_hash.as_str()));
    let row = source_documents::ActiveModel {
        source_id: Set(source_id),
        doc_key: Set(doc.doc_key),
        run_id: Set(run_id),
        url: Set(doc.url),
        title: Set(doc.title.or_else(|| existing.as_ref().and_then(|e| e.title.clone()))),
        content_type: Set(doc.content_type),
        raw_hash: Set(Some(doc.raw_hash)),
        text: Set(if unchanged {
            existing.as_ref().and_then(|e| e.text.clone())
        } else {
            None
        }),
        text_hash: Set(if unchanged {
            existing.as_ref().and_then(|e| e.text_hash.clone())
        } else {
            None
        }),
        pages: Set(if unchanged {
            existing.as_ref().and_then(|e| e.pages.clone())
        } else {
            None
        }),
        indexed_hash: Set(existing.as_ref().and_then(|e| e.indexed_hash.clone())),
        error_code: Set(None),
        error_message: Set(None),
        updated_at: Set(now()),
    };
    use source_documents::Column as C;
    let described = [C::Url, C::Title, C::ContentType];
    upsert_document(store, row, described.into_iter().chain(RUN_COLUMNS)).await
}

/// What each run writes anew of a document it saw: whose run it is, its
/// bytes and text (or why it has none), and when.
const RUN_COLUMNS: [source_documents::Column; 8] = [
    source_documents::Column::RunId,
    source_documents::Column::RawHash,
    source_documents::Column::Text,
    source_documents::Column::TextHash,
    source_documents::Column::Pages,
    source_documents::Column::ErrorCode,
    source_documents::Column::ErrorMessage,
    source_documents::Column::UpdatedAt,
];

/// Inserts a document of a source, or updates these columns of it.
async fn upsert_document(
    store: &Store,
    row: source_documents::ActiveModel,
    update: impl IntoIterator<Item = source_documents::Column>,
) -> Result<(), DbErr> {
    source_documents::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([source_documents::Column::SourceId, source_documents::Column::DocKey])
                .update_columns(update)
                .to_owned(),
        )
        .exec_without_returning(store.db())
        .await?;
    Ok(())
}

/// Records a document a run could not fetch (too large, unreachable), with
/// why: the run's page list shows it as failed. Text indexed from it by an
/// earlier run stays searchable until a run reads it again.
pub async fn record_unfetched(
    store: &Store,
    source_id: Uuid,
    run_id: Uuid,
    doc_key: &str,
    url: Option<&str>,
    code: &str,
    message: &str,
) -> Result<(), DbErr> {
    let row = source_documents::ActiveModel {
        source_id: Set(source_id),
        doc_key: Set(doc_key.to_owned()),
        run_id: Set(run_id),
        url: Set(url.map(str::to_owned)),
        title: Set(None),
        content_type: Set(String::new()),
        raw_hash: Set(None),
        text: Set(None),
        text_hash: Set(None),
        pages: Set(None),
        indexed_hash: Set(None),
        error_code: Set(Some(code.to_owned())),
        error_message: Set(Some(message.to_owned())),
        updated_at: Set(now()),
    };
    upsert_document(store, row, RUN_COLUMNS).await
}

/// The documents a run saw, in key order.
pub async fn documents_of_run(
    store: &Store,
    source_id: Uuid,
    run_id: Uuid,
) -> Result<Vec<source_documents::Model>, DbErr> {
    source_documents::Entity::find()
        .filter(source_documents::Column::SourceId.eq(source_id))
        .filter(source_documents::Column::RunId.eq(run_id))
        .order_by_asc(source_documents::Column::DocKey)
        .all(store.db())
        .await
}

/// Keys of documents of earlier runs that this run did not see again.
pub async fn stale_documents(store: &Store, source_id: Uuid, run_id: Uuid) -> Result<Vec<String>, DbErr> {
    let rows = source_documents::Entity::find()
        .select_only()
        .column(source_documents::Column::DocKey)
        .filter(source_documents::Column::SourceId.eq(source_id))
        .filter(source_documents::Column::RunId.ne(run_id))
        .into_tuple::<String>()
        .all(store.db())
        .await?;
    Ok(rows)
}

/// Saves the parsed text of a document (or why it has none).
pub async fn record_parsed(
    store: &Store,
    source_id: Uuid,
    doc_key: &str,
    parsed: Result<(String, serde_json::Value, Option<String>), (String, String)>,
) -> Result<(), DbErr> {
    let mut row = source_documents::ActiveModel {
        source_id: sea_orm::ActiveValue::Unchanged(source_id),
        doc_key: sea_orm::ActiveValue::Unchanged(doc_key.to_owned()),
        updated_at: Set(now()),
        ..Default::default()
    };
    match parsed {
        Ok((text, blocks, title)) => {
            row.text_hash = Set(Some(sha256_hex(text.as_bytes())));
            row.text = Set(Some(text));
            row.pages = Set(Some(blocks));
            if title.is_some() {
                row.title = Set(title);
            }
            row.error_code = Set(None);
            row.error_message = Set(None);
        }
        Err((code, message)) => {
            row.text = Set(None);
            row.text_hash = Set(None);
            row.pages = Set(None);
            row.error_code = Set(Some(code));
            row.error_message = Set(Some(message));
        }
    }
    source_documents::Entity::update(row).exec(store.db()).await?;
    Ok(())
}

/// A chunk ready to store.
pub struct NewChunk {
    pub ordinal: i32,
    pub heading_path: String,
    pub text: String,
    pub tokens: i32,
    pub page: Option<i32>,
    pub embedding: Vec<f32>,
}

/// Vectors are stored as little-endian f32.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The identity of a chunk's document.
pub struct DocRef<'a> {
    pub org_id: Uuid,
    pub bot_id: Uuid,
    pub source_id: Uuid,
    pub doc_key: &'a str,
    pub url: Option<&'a str>,
    pub title: Option<&'a str>,
}

/// Replaces a document's chunks and marks the text as indexed, atomically:
/// readers see the old chunks or the new ones, never a mix.
pub async fn replace_chunks(store: &Store, doc: DocRef<'_>, text_hash: &str, new: Vec<NewChunk>) -> Result<(), DbErr> {
    let txn = store.db().begin().await?;
    chunks::Entity::delete_many()
        .filter(chunks::Column::SourceId.eq(doc.source_id))
        .filter(chunks::Column::DocKey.eq(doc.doc_key))
        .exec(&txn)
        .await?;
    let created_at = now();
    let rows: Vec<chunks::ActiveModel> = new
        .into_iter()
        .map(|c| chunks::ActiveModel {
            id: Set(Uuid::now_v7()),
            org_id: Set(doc.org_id),
            bot_id: Set(doc.bot_id),
            source_id: Set(doc.source_id),
            doc_key: Set(doc.doc_key.to_owned()),
            ordinal: Set(c.ordinal),
            heading_path: Set(c.heading_path),
            text: Set(c.text),
            tokens: Set(c.tokens),
            page: Set(c.page),
            url: Set(doc.url.map(str::to_owned)),
            title: Set(doc.title.map(str::to_owned)),
            embedding: Set(encode_vector(&c.embedding)),
            created_at: Set(created_at),
        })
        .collect();
    for batch in rows.chunks(200) {
        chunks::Entity::insert_many(batch.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    source_documents::Entity::update_many()
        .col_expr(
            source_documents::Column::IndexedHash,
            sea_orm::sea_query::Expr::value(Some(text_hash.to_owned())),
        )
        .filter(source_documents::Column::SourceId.eq(doc.source_id))
        .filter(source_documents::Column::DocKey.eq(doc.doc_key))
        .exec(&txn)
        .await?;
    bump_generation(&txn, doc.source_id, Some(doc.bot_id)).await?;
    txn.commit().await
}

/// A document's chunks in order.
pub async fn document_chunks(store: &Store, source_id: Uuid, doc_key: &str) -> Result<Vec<chunks::Model>, DbErr> {
    chunks::Entity::find()
        .filter(chunks::Column::SourceId.eq(source_id))
        .filter(chunks::Column::DocKey.eq(doc_key))
        .order_by_asc(chunks::Column::Ordinal)
        .all(store.db())
        .await
}

/// A chunk embedded again under a new title: its id, token count and vector.
pub struct Retitled {
    pub id: Uuid,
    pub tokens: i32,
    pub embedding: Vec<f32>,
}

/// Gives a document's chunks a new title and their new vectors, atomically.
pub async fn retitle_chunks(
    store: &Store,
    source_id: Uuid,
    doc_key: &str,
    title: &str,
    chunks: Vec<Retitled>,
) -> Result<(), DbErr> {
    let txn = store.db().begin().await?;
    use sea_orm::sea_query::Expr;
    for c in chunks {
        chunks::Entity::update_many()
            .col_expr(chunks::Column::Title, Expr::value(Some(title.to_owned())))
            .col_expr(chunks::Column::Tokens, Expr::value(c.tokens))
            .col_expr(chunks::Column::Embedding, Expr::value(encode_vector(&c.embedding)))
            .filter(chunks::Column::Id.eq(c.id))
            .filter(chunks::Column::SourceId.eq(source_id))
            .filter(chunks::Column::DocKey.eq(doc_key))
            .exec(&txn)
            .await?;
    }
    bump_generation(&txn, source_id, None).await?;
    txn.commit().await
}

/// Marks a source's chunks as changed, so searchers reload them. With a bot
/// id the row is created when missing (the source's first chunks).
async fn bump_generation<C: ConnectionTrait>(db: &C, source_id: Uuid, bot_id: Option<Uuid>) -> Result<(), DbErr> {
    use sea_orm::sea_query::ExprTrait;
    let bump = sea_orm::sea_query::Expr::col((chunk_sets::Entity, chunk_sets::Column::Generation)).add(1);
    match bot_id {
        Some(bot_id) => {
            let row = chunk_sets::ActiveModel {
                source_id: Set(source_id),
                bot_id: Set(bot_id),
                generation: Set(1),
            };
            chunk_sets::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(chunk_sets::Column::SourceId)
                        .value(chunk_sets::Column::Generation, bump)
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
        }
        None => {
            chunk_sets::Entity::update_many()
                .col_expr(chunk_sets::Column::Generation, bump)
                .filter(chunk_sets::Column::SourceId.eq(source_id))
                .exec(db)
                .await?;
        }
    }
    Ok(())
}

/// The sources of a bot that have chunks, with their generations; deleted
/// sources are left out (their chunks stop being retrievable at once).
pub async fn chunk_generations(store: &Store, org_id: Uuid, bot_id: Uuid) -> Result<Vec<(Uuid, i64)>, DbErr> {
    let live: std::collections::HashSet<Uuid> = crate::store::read::live_source_ids(store, org_id, bot_id)
        .await?
        .into_iter()
        .collect();
    let rows: Vec<(Uuid, i64)> = chunk_sets::Entity::find()
        .select_only()
        .column(chunk_sets::Column::SourceId)
        .column(chunk_sets::Column::Generation)
        .filter(chunk_sets::Column::BotId.eq(bot_id))
        .order_by_asc(chunk_sets::Column::SourceId)
        .into_tuple()
        .all(store.db())
        .await?;
    Ok(rows.into_iter().filter(|(s, _)| live.contains(s)).collect())
}

/// Every chunk of a source with its embedding, in document order.
pub async fn source_chunks(store: &Store, source_id: Uuid) -> Result<Vec<chunks::Model>, DbErr> {
    chunks::Entity::find()
        .filter(chunks::Column::SourceId.eq(source_id))
        .order_by_asc(chunks::Column::DocKey)
        .order_by_asc(chunks::Column::Ordinal)
        .all(store.db())
        .await
}

/// A document looked up by key, or the source's only document when no key
/// is given.
pub enum Lookup<T> {
    Found(T),
    NotFound,
    /// No key given and the source has several documents (their count).
    KeyNeeded(u64),
}

/// What Parley extracted from a source's document: its row (text and
/// blocks) and its chunks in order.
pub type DocumentLookup = Lookup<(Box<source_documents::Model>, Vec<chunks::Model>)>;

async fn document_row(
    store: &Store,
    source_id: Uuid,
    key: Option<&str>,
) -> Result<Lookup<source_documents::Model>, DbErr> {
    let mut query = source_documents::Entity::find().filter(source_documents::Column::SourceId.eq(source_id));
    if let Some(key) = key {
        query = query.filter(source_documents::Column::DocKey.eq(key));
    } else {
        let count = query.clone().count(store.db()).await?;
        if count > 1 {
            return Ok(Lookup::KeyNeeded(count));
        }
    }
    Ok(match query.one(store.db()).await? {
        Some(row) => Lookup::Found(row),
        None => Lookup::NotFound,
    })
}

pub async fn document(store: &Store, source_id: Uuid, key: Option<&str>) -> Result<DocumentLookup, DbErr> {
    Ok(match document_row(store, source_id, key).await? {
        Lookup::Found(row) => {
            let chunks = document_chunks(store, source_id, &row.doc_key).await?;
            Lookup::Found((Box::new(row), chunks))
        }
        Lookup::NotFound => Lookup::NotFound,
        Lookup::KeyNeeded(n) => Lookup::KeyNeeded(n),
    })
}

/// The key of a source's document (`key` itself when it exists).
pub async fn document_key(store: &Store, source_id: Uuid, key: Option<&str>) -> Result<Lookup<String>, DbErr> {
    Ok(match document_row(store, source_id, key).await? {
        Lookup::Found(row) => Lookup::Found(row.doc_key),
        Lookup::NotFound => Lookup::NotFound,
        Lookup::KeyNeeded(n) => Lookup::KeyNeeded(n),
    })
}

/// Removes documents (and their chunks) by key.
pub async fn remove_documents(store: &Store, source_id: Uuid, keys: &[String]) -> Result<(), DbErr> {
    if keys.is_empty() {
        return Ok(());
    }
    let txn = store.db().begin().await?;
    for batch in keys.chunks(200) {
        chunks::Entity::delete_many()
            .filter(chunks::Column::SourceId.eq(source_id))
            .filter(chunks::Column::DocKey.is_in(batch.to_vec()))
            .exec(&txn)
            .await?;
        source_documents::Entity::delete_many()
            .filter(source_documents::Column::SourceId.eq(source_id))
            .filter(source_documents::Column::DocKey.is_in(batch.to_vec()))
            .exec(&txn)
            .await?;
    }
    bump_generation(&txn, source_id, None).await?;
    txn.commit().await
}

/// Chunk and token counts of a document.
pub async fn chunk_counts(store: &Store, source_id: Uuid, doc_key: &str) -> Result<(u32, u32), DbErr> {
    let rows: Vec<i32> = chunks::Entity::find()
        .select_only()
        .column(chunks::Column::Tokens)
        .filter(chunks::Column::SourceId.eq(source_id))
        .filter(chunks::Column::DocKey.eq(doc_key))
        .into_tuple()
        .all(store.db())
        .await?;
    Ok((rows.len() as u32, rows.iter().map(|t| *t as u32).sum()))
}

/// Removes everything derived from a source: chunks first (they stop being
/// retrievable), then its documents.
pub async fn purge_source<C: ConnectionTrait>(db: &C, source_id: Uuid) -> Result<(), DbErr> {
    chunks::Entity::delete_many()
        .filter(chunks::Column::SourceId.eq(source_id))
        .exec(db)
        .await?;
    source_documents::Entity::delete_many()
        .filter(source_documents::Column::SourceId.eq(source_id))
        .exec(db)
        .await?;
    chunk_sets::Entity::delete_by_id(source_id).exec(db).await?;
    Ok(())
}

/// Removes the chunks of every source of a bot.
pub async fn purge_bot_chunks<C: ConnectionTrait>(db: &C, bot_id: Uuid) -> Result<(), DbErr> {
    chunks::Entity::delete_many()
        .filter(chunks::Column::BotId.eq(bot_id))
        .exec(db)
        .await?;
    chunk_sets::Entity::delete_many()
        .filter(chunk_sets::Column::BotId.eq(bot_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes blobs that no document, no live document source and no
/// attachment refers to,
/// stored before `before`. Returns how many went.
pub async fn collect_garbage_blobs(store: &Store, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let backend = store.backend();
    // Document sources keep their file's hash inside `spec`.
    let sql = "DELETE FROM blobs WHERE created_at < $1 \
         AND hash NOT IN (SELECT raw_hash FROM source_documents WHERE raw_hash IS NOT NULL) \
         AND hash NOT IN (SELECT sha256 FROM attachments) \
         AND NOT EXISTS (SELECT 1 FROM sources WHERE deleted_at IS NULL \
                         AND CAST(spec AS TEXT) LIKE '%' || blobs.hash || '%')";
    let sql = if backend == sea_orm::DbBackend::Postgres {
        sql.to_owned()
    } else {
        sql.replace("$1", "?")
    };
    let result = store
        .db()
        .execute_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [before.into()]))
        .await?;
    Ok(result.rows_affected())
}
