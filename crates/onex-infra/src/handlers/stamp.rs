//! The `stamp` handler: `stamp.create`, `stamp.validate`, `stamp.hash`, `stamp.batch` and
//! `stamp.lookup`, on content carried in the envelope, with stamps persisted in a `StampStore`.

use std::sync::Arc;

use bytes::Bytes;
use onex_core::envelope::Envelope;
use onex_core::error::codes as core_codes;
use onex_core::stamp::{
    BINARY, CommentStyle, ContentType, NormalizedHash, StampFormat, StampRequest, Stamped, Validation, detect,
    from_mime, judge, stamp_with,
};
use onex_spi::{
    Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health, SaveOutcome, SecretStore, SpiError, SpiResult,
    StampRecord, StampStore, async_trait,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::payload::{content_bytes, decode, put_bytes};
use crate::error::codes;
use crate::ids::{new_uuid_v7, now_utc};
use crate::stamp::{normalized_hash_parallel, raw_hash_parallel};
use crate::stores::{PostgresStampStore, SqliteStampStore};
use onex_core::secret::Secret;

/// The namespace of stamps whose request names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Content given without a file name or type: plain text stamped with `#`, as the Python
/// service did; binary content is still hash-only.
const PLAIN_TEXT: ContentType = ContentType { mime: "text/plain", style: Some(CommentStyle::Hash) };

/// Stamps content and keeps every stamp in a store.
pub struct StampHandler {
    store: tokio::sync::OnceCell<Arc<dyn StampStore>>,
    /// Where `initialize` opens the store, when it was not given ready-made.
    location: Option<(StoreLocation, Arc<dyn SecretStore>)>,
}

/// Where a stamp store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL, or a `${env:…}`/`${vault:…}` reference to one (never printed).
    Postgres(Secret),
}

impl std::fmt::Debug for StampHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampHandler").finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    content: Option<String>,
    content_base64: Option<String>,
    file_path: Option<String>,
    content_type: Option<String>,
    format: Option<String>,
    namespace: Option<String>,
    author: Option<String>,
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    items: Vec<Json>,
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentRequest {
    content: Option<String>,
    content_base64: Option<String>,
    file_path: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    raw: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupRequest {
    hash: String,
    namespace: Option<String>,
}

/// A stamped item ready to be stored, and its reply.
struct Prepared {
    record: StampRecord,
    reply: Map<String, Json>,
}

fn content_type_of(bytes: &[u8], file_path: Option<&str>, mime: Option<&str>) -> SpiResult<ContentType> {
    let detected = detect(file_path, bytes);
    Ok(match (detected, file_path, mime) {
        (BINARY, _, _) => BINARY,
        (_, Some(_), _) => detected,
        (_, None, Some(mime)) => from_mime(mime).ok_or_else(|| {
            SpiError::new(codes::BAD_PAYLOAD, format!("stamp: unknown content_type `{mime}`; give a file_path instead"))
        })?,
        (_, None, None) => PLAIN_TEXT,
    })
}

fn prepare(payload: &Json, default_namespace: &str) -> SpiResult<Prepared> {
    const OP: &str = "stamp.create";
    let req: CreateRequest = decode(OP, payload)?;
    let content = Bytes::from(content_bytes(OP, req.content, req.content_base64.as_deref())?);
    let content_type = content_type_of(&content, req.file_path.as_deref(), req.content_type.as_deref())?;
    let format = match req.format.as_deref() {
        None => StampFormat::Lightweight,
        Some(f) => StampFormat::parse(f).ok_or_else(|| {
            SpiError::new(codes::BAD_PAYLOAD, format!("{OP}: format `{f}` is not lightweight, rich or hash_only"))
        })?,
    };
    let namespace = req.namespace.unwrap_or_else(|| default_namespace.to_owned());
    let request = StampRequest {
        format,
        uid: new_uuid_v7(),
        timestamp: now_utc(),
        author: req.author.as_deref(),
        version: req.version.as_deref(),
        file_path: req.file_path.as_deref(),
        content_type,
    };
    let hashed = hash_content(&content, content_type == BINARY);
    let stamped =
        stamp_with(&content, hashed, &request).map_err(|e| SpiError::new(codes::BAD_PAYLOAD, format!("{OP}: {e}")))?;
    Ok(describe(&stamped, content.len() as u64, req.file_path, namespace))
}

/// The stamp hash of content: normalised for text, raw for binary; on two cores when large.
fn hash_content(content: &Bytes, binary: bool) -> NormalizedHash {
    if binary { raw_hash_parallel(content) } else { normalized_hash_parallel(content) }
}

fn describe(stamped: &Stamped<'_>, size: u64, file_path: Option<String>, namespace: String) -> Prepared {
    let f = &stamped.fields;
    let stamp_json = json!({
        "uid": f.uid.to_string(),
        "hash": f.hash,
        "timestamp": f.timestamp.to_rfc3339(),
        "format": stamped.format.as_str(),
        "author": f.author,
        "version": f.version,
        "hashed_len": stamped.hashed_len,
    });
    let mut reply = Map::new();
    reply.insert("uid".into(), json!(f.uid.to_string()));
    reply.insert("hash".into(), json!(f.hash));
    reply.insert("timestamp".into(), json!(f.timestamp.to_rfc3339()));
    reply.insert("format".into(), json!(stamped.format.as_str()));
    reply.insert("content_type".into(), json!(stamped.content_type.mime));
    reply.insert("namespace".into(), json!(namespace));
    if stamped.changes_content() {
        reply.insert("stamp".into(), json!(stamped.stamp_text()));
        put_bytes(&mut reply, "stamped_content", stamped.to_vec());
    }
    let record = StampRecord {
        file_hash: f.hash.clone(),
        file_path,
        file_size: size,
        content_type: stamped.content_type.mime.to_owned(),
        stamp: stamp_json,
        namespace,
    };
    Prepared { record, reply }
}

fn stored(outcome: SaveOutcome) -> Json {
    json!(match outcome {
        SaveOutcome::Inserted => "inserted",
        SaveOutcome::AlreadyExists => "already_exists",
    })
}

fn error_json(e: &SpiError) -> Json {
    json!({"code": e.code(), "category": e.category(), "message": e.message()})
}

impl StampHandler {
    /// A handler persisting into `store`.
    pub fn new(store: Arc<dyn StampStore>) -> Self {
        Self { store: tokio::sync::OnceCell::from(store), location: None }
    }

    /// A handler that opens its store at `initialize`, resolving a secret reference in a
    /// PostgreSQL location through `secrets` first.
    pub fn at(location: StoreLocation, secrets: Arc<dyn SecretStore>) -> Self {
        Self { store: tokio::sync::OnceCell::new(), location: Some((location, secrets)) }
    }

    fn store(&self) -> SpiResult<&Arc<dyn StampStore>> {
        self.store.get().ok_or_else(|| {
            SpiError::new(codes::STORE_UNAVAILABLE, "the stamp handler's store is not open (handler not initialised)")
        })
    }

    async fn create(&self, payload: &Json) -> SpiResult<Json> {
        let mut prepared = prepare(payload, DEFAULT_NAMESPACE)?;
        let outcome = self.store()?.save(&prepared.record).await?;
        prepared.reply.insert("stored".into(), stored(outcome));
        Ok(Json::Object(prepared.reply))
    }

    /// Stamps every item; items that fail are answered with their error while the others are
    /// stamped and saved in one transaction. Results keep the items' order.
    async fn batch(&self, payload: &Json) -> SpiResult<Json> {
        let req: BatchRequest = decode("stamp.batch", payload)?;
        let namespace = req.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let mut records = Vec::with_capacity(req.items.len());
        let replies: Vec<SpiResult<Map<String, Json>>> = req
            .items
            .iter()
            .map(|item| {
                prepare(item, namespace).map(|p| {
                    records.push(p.record);
                    p.reply
                })
            })
            .collect();
        let mut outcomes = self.store()?.save_batch(&records).await?.into_iter();
        let results: Vec<Json> = replies
            .into_iter()
            .map(|reply| match reply {
                Ok(mut reply) => {
                    reply.insert("ok".into(), json!(true));
                    reply.insert("stored".into(), outcomes.next().map_or(Json::Null, stored));
                    Json::Object(reply)
                }
                Err(e) => json!({"ok": false, "error": error_json(&e)}),
            })
            .collect();
        let failed = results.iter().filter(|r| r["ok"] == json!(false)).count();
        Ok(json!({"results": results, "succeeded": results.len() - failed, "failed": failed}))
    }

    async fn validate(&self, payload: &Json) -> SpiResult<Json> {
        const OP: &str = "stamp.validate";
        let req: ContentRequest = decode(OP, payload)?;
        let content = Bytes::from(content_bytes(OP, req.content, req.content_base64.as_deref())?);
        let namespace = req.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let binary = content_type_of(&content, req.file_path.as_deref(), None)? == BINARY;
        let hashed = hash_content(&content, binary);
        let validation = if binary {
            Validation::Missing { actual: hashed.hash.to_hex().to_string() }
        } else {
            judge(&hashed, &content)
        };
        let mut reply = json!({"status": validation.status(), "source": "content"});
        match validation {
            Validation::Valid { stamp } => {
                reply["hash"] = json!(stamp.hash);
                reply["uid"] = json!(stamp.uid.to_string());
                reply["timestamp"] = json!(stamp.timestamp.to_rfc3339());
            }
            Validation::Modified { expected, actual, .. } => {
                reply["expected"] = json!(expected);
                reply["hash"] = json!(actual);
            }
            Validation::Missing { actual } => {
                // Hash-only stamps live in the store: content whose hash is recorded is valid.
                if let Some(record) = self.store()?.find_by_hash(&actual, namespace).await? {
                    reply = json!({"status": "valid", "source": "store", "stamp": record.stamp});
                }
                reply["hash"] = json!(actual);
            }
            Validation::Malformed { offset, reason } => {
                reply["offset"] = json!(offset);
                reply["reason"] = json!(reason);
            }
            Validation::Conflicting { stamps } => {
                reply["hashes"] = json!(stamps.iter().map(|s| s.hash.clone()).collect::<Vec<_>>());
            }
        }
        Ok(reply)
    }

    fn hash(payload: &Json) -> SpiResult<Json> {
        const OP: &str = "stamp.hash";
        let req: ContentRequest = decode(OP, payload)?;
        let content = Bytes::from(content_bytes(OP, req.content, req.content_base64.as_deref())?);
        let raw = req.raw || content_type_of(&content, req.file_path.as_deref(), None)? == BINARY;
        let hashed = hash_content(&content, raw);
        Ok(json!({"hash": hashed.hash.to_hex().to_string(), "len": hashed.len, "normalized": !raw}))
    }

    async fn lookup(&self, payload: &Json) -> SpiResult<Json> {
        let req: LookupRequest = decode("stamp.lookup", payload)?;
        let namespace = req.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let record = self.store()?.find_by_hash(&req.hash, namespace).await?.ok_or_else(|| {
            SpiError::new(
                codes::NOT_FOUND,
                format!("stamp.lookup: no stamp of hash {} in namespace `{namespace}`", req.hash),
            )
        })?;
        Ok(json!({
            "file_hash": record.file_hash,
            "file_path": record.file_path,
            "file_size": record.file_size,
            "content_type": record.content_type,
            "stamp": record.stamp,
            "namespace": record.namespace,
        }))
    }
}

#[async_trait]
impl Handler for StampHandler {
    fn describe(&self) -> HandlerDescriptor {
        crate::builtin::descriptor("stamp")
            .unwrap_or_else(|| HandlerDescriptor { handler_type: "stamp".into(), operations: Vec::new() })
    }

    async fn initialize(&self) -> SpiResult<()> {
        let Some((location, secrets)) = self.location.as_ref().filter(|_| self.store.get().is_none()) else {
            return Ok(());
        };
        let store: Arc<dyn StampStore> = match location {
            StoreLocation::Sqlite(path) => Arc::new(SqliteStampStore::open(path).await?),
            StoreLocation::Postgres(value) => {
                let url = match onex_core::contract::SecretRef::parse(value.expose()) {
                    Some(reference) => secrets.resolve(&reference).await?,
                    None => value.clone(),
                };
                Arc::new(PostgresStampStore::connect(url.expose(), 8).await?)
            }
        };
        // A concurrent initialise may have won the race; either store is the same location.
        let _ = self.store.set(store);
        Ok(())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        // Not initialised, not serving: every operation, store-bound or not.
        self.store()?;
        let payload = &request.payload;
        match request.operation.as_str() {
            "stamp.create" => self.create(payload).await,
            "stamp.batch" => self.batch(payload).await,
            "stamp.validate" => self.validate(payload).await,
            "stamp.hash" => Self::hash(payload),
            "stamp.lookup" => self.lookup(payload).await,
            other => Err(SpiError::new(
                core_codes::OPERATION_NOT_FOUND,
                format!("envelope {}: the stamp handler has no operation `{other}`", request.envelope_id),
            )),
        }
    }

    async fn health(&self) -> Health {
        let store = match self.store() {
            Ok(store) => store,
            Err(e) => return Health::Unhealthy(e.to_string()),
        };
        match store.find_by_hash("", DEFAULT_NAMESPACE).await {
            Ok(_) => Health::Healthy,
            Err(e) => Health::Unhealthy(format!("stamp store: {e}")),
        }
    }

    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

/// Builds stamp handlers from their runtime-config section: `{"sqlite_path": "stamps.db"}`
/// (relative to the host's data directory; the default is `onex-stamps.db`) or `{"postgres_url": "${env:ONEX_STAMP_DB_URL}"}` (a secret reference, resolved when
/// the handler initialises).
pub struct StampHandlerFactory;

impl std::fmt::Debug for StampHandlerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StampHandlerFactory")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StampConfig {
    sqlite_path: Option<std::path::PathBuf>,
    postgres_url: Option<String>,
}

impl HandlerFactory for StampHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        crate::builtin::descriptor("stamp")
            .unwrap_or_else(|| HandlerDescriptor { handler_type: "stamp".into(), operations: Vec::new() })
    }

    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        let config: StampConfig = if init.config.is_null() {
            decode("stamp config", &json!({}))?
        } else {
            decode("stamp config", &init.config)?
        };
        let location = match (config.sqlite_path, config.postgres_url) {
            (Some(_), Some(_)) => {
                return Err(SpiError::new(
                    codes::BAD_PAYLOAD,
                    "stamp config: give `sqlite_path` or `postgres_url`, not both",
                ));
            }
            (_, Some(url)) => StoreLocation::Postgres(Secret::new(url)),
            (path, None) => StoreLocation::Sqlite(init.data_dir.join(path.unwrap_or_else(|| "onex-stamps.db".into()))),
        };
        Ok(Arc::new(StampHandler::at(location, init.secrets)))
    }
}
