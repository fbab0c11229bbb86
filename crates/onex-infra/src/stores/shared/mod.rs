//! Store logic written once for SQLite and PostgreSQL: the outbox relays' claims, workflow run
//! leases and retention ([`OutboxStore`], [`RunStore`], [`RetentionStore`]), and the careful
//! commit of a batch (a savepoint per commit, each written by the store's own
//! `write_transition`).
//!
//! Claims, marks, lease renewals, take-overs and sweeps go through the store's `bookkeeping`
//! pool, whose commits do not wait for the disk (losing one is safe; see
//! `pools::bookkeeping_postgres`); runs and journals through the durable `pool`.
//!
//! [`impl_shared_state!`] implements the three traits for a store with a `pool` field from a
//! module of statements in the store's dialect ([`postgres`], [`sqlite`]). The statements of
//! both modules bind the same parameters in the same order and return the same row types
//! (JSON and UUIDs as text), so the Rust around them is one text: only the SQL is apart.
//!
//! [`OutboxStore`]: onex_spi::OutboxStore
//! [`RunStore`]: onex_spi::RunStore
//! [`RetentionStore`]: onex_spi::RetentionStore

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::time::Duration;

use onex_spi::{OutboxEntry, RunRecord, SpiError, SpiResult};
use uuid::Uuid;

use super::state_rows::{outbox_entry, parse_json, parse_run_id};
use crate::error::codes;

/// A row of `onex_outbox`: id, topic, key, payload, headers (JSON text).
pub(crate) type OutboxRow = (i64, String, Option<String>, Vec<u8>, String);

/// A row of `onex_workflow_runs`: run id, workflow, trigger (JSON text), status, owner.
pub(crate) type RunRow = (String, String, String, String, Option<String>);

/// A duration as whole milliseconds for a BIGINT parameter.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Outbox rows as entries, oldest first (`RETURNING` keeps no order).
pub(crate) fn claimed_entries(rows: Vec<OutboxRow>) -> SpiResult<Vec<OutboxEntry>> {
    let mut entries = rows
        .into_iter()
        .map(|(id, topic, key, payload, headers)| {
            let headers = parse_json(&headers, &format!("the headers of outbox entry {id}"))?;
            outbox_entry(id, topic, key, payload, headers)
        })
        .collect::<SpiResult<Vec<_>>>()?;
    entries.sort_by_key(|e| e.id);
    Ok(entries)
}

/// A run row as a record.
pub(crate) fn run_record((run_id, workflow, trigger, status, owner): RunRow) -> SpiResult<RunRecord> {
    let run_id = parse_run_id(&run_id)?;
    let trigger = parse_json(&trigger, &format!("the trigger of run {run_id}"))?;
    Ok(RunRecord { run_id, workflow, trigger, status, owner })
}

/// Why a run could not be journaled or finished by `owner`: there is no such run, or another
/// host holds it (or it finished).
pub(crate) fn not_held(run_id: Uuid, owner: &str, found: Option<RunRow>) -> SpiError {
    match found {
        None => SpiError::new(codes::NOT_FOUND, format!("no workflow run {run_id}")),
        Some((_, _, _, status, holder)) => SpiError::new(
            codes::RUN_LEASE_LOST,
            format!(
                "workflow run {run_id} is not held by {owner}: it is {status}, held by {}",
                holder.as_deref().unwrap_or("nobody")
            ),
        ),
    }
}

/// Implements `OutboxStore`, `RunStore`, `RetentionStore` and `InspectStore` for `$store` (a struct with
/// `pool` and `bookkeeping` fields) with the statements of module `shared::$sql` (`postgres` or `sqlite`).
macro_rules! impl_shared_state {
    ($store:ty, $sql:ident) => {
        const _: () = {
            use onex_core::workflow::JournalEntry;
            use onex_spi::{
                InspectStore, Lease, OutboxEntry, OutboxStore, RetentionPolicy, RetentionStore, RowCounts, RunRecord,
                RunStore, RunsToTake, SpiResult,
            };
            use uuid::Uuid;
            use $crate::stores::shared::$sql as sql;

            use $crate::stores::error::store_error;
            use $crate::stores::shared::{OutboxRow, RunRow, claimed_entries, millis, not_held, run_record};
            use $crate::stores::state_rows::{db_ids, entry_json, journal_entry, parse_json};

            #[async_trait::async_trait]
            impl OutboxStore for $store {
                async fn claim_outbox(&self, lease: &Lease, limit: u32) -> SpiResult<Vec<OutboxEntry>> {
                    let rows: Vec<OutboxRow> = sqlx::query_as(sql::CLAIM_OUTBOX)
                        .bind(&lease.owner)
                        .bind(millis(lease.duration))
                        .bind(i64::from(limit))
                        .fetch_all(&self.bookkeeping)
                        .await
                        .map_err(|e| store_error("claiming outbox entries", e))?;
                    claimed_entries(rows)
                }

                async fn pending_outbox(&self, limit: u32) -> SpiResult<Vec<OutboxEntry>> {
                    let rows: Vec<OutboxRow> = sqlx::query_as(sql::SELECT_PENDING)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| store_error("reading the outbox", e))?;
                    claimed_entries(rows)
                }

                async fn outbox_backlog(&self) -> SpiResult<u64> {
                    let count: i64 = sqlx::query_scalar(sql::COUNT_PENDING)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(|e| store_error("counting the outbox", e))?;
                    Ok(u64::try_from(count).unwrap_or(0))
                }

                async fn mark_published(&self, ids: &[u64]) -> SpiResult<()> {
                    let ids = db_ids(ids);
                    if ids.is_empty() {
                        return Ok(());
                    }
                    sqlx::query(sql::MARK_PUBLISHED)
                        .bind(serde_json::Value::from(ids).to_string())
                        .execute(&self.bookkeeping)
                        .await
                        .map_err(|e| store_error("marking outbox entries published", e))?;
                    Ok(())
                }
            }

            #[async_trait::async_trait]
            impl RunStore for $store {
                async fn start_run(&self, run: &RunRecord, lease: &Lease) -> SpiResult<bool> {
                    let done = sqlx::query(sql::INSERT_RUN)
                        .bind(run.run_id.to_string())
                        .bind(&run.workflow)
                        .bind(run.trigger.to_string())
                        .bind(&lease.owner)
                        .bind(millis(lease.duration))
                        .execute(&self.pool)
                        .await
                        .map_err(|e| store_error("starting a workflow run", e))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn renew_run(&self, run_id: Uuid, lease: &Lease) -> SpiResult<bool> {
                    let done = sqlx::query(sql::RENEW_RUN)
                        .bind(run_id.to_string())
                        .bind(&lease.owner)
                        .bind(millis(lease.duration))
                        .execute(&self.bookkeeping)
                        .await
                        .map_err(|e| store_error("renewing a workflow run's lease", e))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn take_over_run(&self, run_id: Uuid, lease: &Lease) -> SpiResult<Option<RunRecord>> {
                    let row: Option<RunRow> = sqlx::query_as(sql::TAKE_OVER_RUN)
                        .bind(run_id.to_string())
                        .bind(&lease.owner)
                        .bind(millis(lease.duration))
                        .fetch_optional(&self.bookkeeping)
                        .await
                        .map_err(|e| store_error("taking over a workflow run", e))?;
                    row.map(run_record).transpose()
                }

                async fn take_over_runs(
                    &self,
                    lease: &Lease,
                    which: RunsToTake,
                    limit: u32,
                ) -> SpiResult<Vec<RunRecord>> {
                    let statement = match which {
                        RunsToTake::Expired => sql::TAKE_OVER_EXPIRED,
                        RunsToTake::AllRunning => sql::TAKE_OVER_ALL,
                    };
                    let rows: Vec<RunRow> = sqlx::query_as(statement)
                        .bind(&lease.owner)
                        .bind(millis(lease.duration))
                        .bind(i64::from(limit))
                        .fetch_all(&self.bookkeeping)
                        .await
                        .map_err(|e| store_error("taking over workflow runs", e))?;
                    rows.into_iter().map(run_record).collect()
                }

                async fn append_journal(&self, run_id: Uuid, owner: &str, entry: &JournalEntry) -> SpiResult<()> {
                    let err = |e| store_error("appending to a workflow journal", e);
                    let entry = entry_json(entry)?.to_string();
                    let run = run_id.to_string();
                    if let Some(statement) = sql::APPEND_IN_ONE_STATEMENT {
                        let done = sqlx::query(statement)
                            .bind(&run)
                            .bind(owner)
                            .bind(entry)
                            .execute(&self.pool)
                            .await
                            .map_err(err)?;
                        if done.rows_affected() == 0 {
                            return Err(not_held(run_id, owner, self.run_row(run_id).await?));
                        }
                        return Ok(());
                    }
                    let mut tx = self.pool.begin().await.map_err(err)?;
                    let seq: Option<i64> = sqlx::query_scalar(sql::NEXT_SEQ)
                        .bind(&run)
                        .bind(owner)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
                    let Some(seq) = seq else {
                        let _rolled_back = tx.rollback().await;
                        return Err(not_held(run_id, owner, self.run_row(run_id).await?));
                    };
                    sqlx::query(sql::INSERT_JOURNAL)
                        .bind(&run)
                        .bind(seq)
                        .bind(entry)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)
                }

                async fn journal(&self, run_id: Uuid) -> SpiResult<Vec<JournalEntry>> {
                    let rows: Vec<(i64, String)> = sqlx::query_as(sql::SELECT_JOURNAL)
                        .bind(run_id.to_string())
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| store_error("reading a workflow journal", e))?;
                    rows.into_iter()
                        .map(|(seq, entry)| {
                            let entry = parse_json(&entry, &format!("journal entry {seq} of run {run_id}"))?;
                            journal_entry(run_id, seq, entry)
                        })
                        .collect()
                }

                async fn finish_run(&self, run_id: Uuid, owner: &str, status: &str) -> SpiResult<()> {
                    let done = sqlx::query(sql::FINISH_RUN)
                        .bind(run_id.to_string())
                        .bind(owner)
                        .bind(status)
                        .execute(&self.pool)
                        .await
                        .map_err(|e| store_error("finishing a workflow run", e))?;
                    if done.rows_affected() > 0 {
                        return Ok(());
                    }
                    Err(not_held(run_id, owner, self.run_row(run_id).await?))
                }

                async fn run(&self, run_id: Uuid) -> SpiResult<Option<RunRecord>> {
                    self.run_row(run_id).await?.map(run_record).transpose()
                }
            }

            impl $store {
                /// Commits `commits` in one transaction with a SAVEPOINT per commit, each
                /// written by the dialect's `write_transition` and rolled back when it is a
                /// duplicate or refused, so one commit never fails its neighbours. A store that
                /// goes away part-way takes the whole transaction with it (`Err`).
                pub(crate) async fn commit_with_savepoints(
                    &self,
                    commits: &[onex_spi::TransitionCommit],
                ) -> SpiResult<Vec<SpiResult<onex_spi::CommitOutcome>>> {
                    use sqlx::Connection as _;
                    let err = |e| store_error("committing a batch of transitions", e);
                    let mut tx = self.pool.begin().await.map_err(err)?;
                    let mut outcomes = Vec::with_capacity(commits.len());
                    for commit in commits {
                        let mut savepoint = tx.begin().await.map_err(err)?;
                        let outcome = match write_transition(&mut savepoint, commit).await {
                            Err(e) if e.code() == $crate::error::codes::STORE_UNAVAILABLE.as_str() => return Err(e),
                            outcome => outcome,
                        };
                        if let Ok(onex_spi::CommitOutcome::Committed { .. }) = outcome {
                            savepoint.commit().await.map_err(err)?;
                        } else {
                            savepoint.rollback().await.map_err(err)?;
                        }
                        outcomes.push(outcome);
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(outcomes)
                }

                /// [`onex_spi::StateStore::load_for_event`], in one statement.
                pub(crate) async fn load_for_event_row(
                    &self,
                    envelope_id: Uuid,
                    fsm: &str,
                    entity_key: &str,
                ) -> SpiResult<(Option<serde_json::Value>, Option<onex_spi::EntityState>)> {
                    let (reply, state, version): (Option<String>, Option<String>, Option<i64>) =
                        sqlx::query_as(sql::LOAD_FOR_EVENT)
                            .bind(envelope_id.to_string())
                            .bind(fsm)
                            .bind(entity_key)
                            .fetch_one(&self.pool)
                            .await
                            .map_err(|e| store_error("loading an entity's state", e))?;
                    let what = || format!("the stored reply of envelope {envelope_id}");
                    let reply = reply.map(|r| parse_json(&r, &what())).transpose()?;
                    let entity = match (state, version) {
                        (Some(state), Some(version)) => Some(onex_spi::EntityState {
                            fsm: fsm.to_owned(),
                            entity_key: entity_key.to_owned(),
                            state,
                            version: $crate::stores::state_rows::stored_u64(version, "version")?,
                        }),
                        _ => None,
                    };
                    Ok((reply, entity))
                }

                /// Whether the database answers a trivial statement.
                pub(crate) async fn ping(&self) -> onex_spi::Health {
                    match sqlx::query("SELECT 1").execute(&self.pool).await {
                        Ok(_) => onex_spi::Health::Healthy,
                        Err(e) => onex_spi::Health::Unhealthy(store_error("pinging the state store", e).to_string()),
                    }
                }

                async fn run_row(&self, run_id: Uuid) -> SpiResult<Option<RunRow>> {
                    sqlx::query_as(sql::SELECT_RUN)
                        .bind(run_id.to_string())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(|e| store_error("reading a workflow run", e))
                }

                async fn prune_one(
                    &self,
                    statement: &'static str,
                    age: std::time::Duration,
                    limit: u32,
                ) -> SpiResult<u64> {
                    let done = sqlx::query(statement)
                        .bind(millis(age))
                        .bind(i64::from(limit))
                        .execute(&self.bookkeeping)
                        .await
                        .map_err(|e| store_error("removing records past their retention", e))?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait::async_trait]
            impl InspectStore for $store {
                async fn state_counts(&self, fsm: &str) -> SpiResult<Vec<(String, u64)>> {
                    let rows: Vec<(String, i64)> = sqlx::query_as(sql::STATE_COUNTS)
                        .bind(fsm)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| store_error("counting entities by state", e))?;
                    Ok(rows.into_iter().map(|(state, n)| (state, u64::try_from(n).unwrap_or(0))).collect())
                }

                async fn recent_runs(&self, limit: u32) -> SpiResult<Vec<RunRecord>> {
                    let rows: Vec<RunRow> = sqlx::query_as(sql::RECENT_RUNS)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| store_error("reading the latest workflow runs", e))?;
                    rows.into_iter().map(run_record).collect()
                }
            }

            #[async_trait::async_trait]
            impl RetentionStore for $store {
                async fn prune(&self, policy: &RetentionPolicy, limit: u32) -> SpiResult<RowCounts> {
                    Ok(RowCounts {
                        processed: self.prune_one(sql::PRUNE_PROCESSED, policy.processed, limit).await?,
                        outbox: self.prune_one(sql::PRUNE_OUTBOX, policy.published_outbox, limit).await?,
                        journal: self.prune_one(sql::PRUNE_JOURNAL, policy.finished_runs, limit).await?,
                        runs: self.prune_one(sql::PRUNE_RUNS, policy.finished_runs, limit).await?,
                    })
                }

                async fn row_counts(&self) -> SpiResult<RowCounts> {
                    let (processed, outbox, runs, journal): (i64, i64, i64, i64) = sqlx::query_as(sql::ROW_COUNTS)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(|e| store_error("counting rows", e))?;
                    let count = |n: i64| u64::try_from(n).unwrap_or(0);
                    Ok(RowCounts {
                        processed: count(processed),
                        outbox: count(outbox),
                        runs: count(runs),
                        journal: count(journal),
                    })
                }
            }
        };
    };
}

pub(crate) use impl_shared_state;
