//! Reducer commits in one statement: every commit of a batch (or a single one) written by one
//! `WITH` statement, in one round trip and one implicit transaction, instead of a transaction
//! with a savepoint and three statements per commit.
//!
//! The statement updates the entities whose version matches (new entities are inserted), and
//! writes the idempotency record and the outbox only for those. It has no `ON CONFLICT` on the
//! idempotency record: a commit whose envelope was processed before aborts the whole statement
//! (a unique violation), which then kept nothing, and the caller commits the batch again the
//! careful way (a transaction with a savepoint per commit), which reports the duplicate. The
//! same holds for a deadlock or serialization failure. Commits that lost their version check
//! are looked up once more (current version, and whether the envelope was processed), so each
//! gets the outcome [`onex_spi::StateStore::commit_transitions`] promises.

use std::collections::HashMap;

use onex_spi::{CommitOutcome, SpiResult, TransitionCommit};
use serde_json::Value as Json;
use sqlx::PgPool;

use super::super::error::store_error;
use super::super::state_rows::{db_version, headers_json, stored_u64, version_conflict};

/// `$1..$7`: one array element per commit (ordinal, fsm, entity key, expected version or -1 for
/// a new entity, new state, envelope id, reply); `$8..$12`: one per outbox message (the
/// ordinal of its commit, topic, key, payload, headers), in commit order. Returns the
/// ordinals of the commits written, with their new version.
const COMMIT: &str = "WITH input AS ( \
         SELECT * FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::jsonb[]) \
         AS t(ord, fsm, entity_key, expected, state, envelope_id, reply)), \
     updated AS ( \
         UPDATE onex_fsm_state s SET state = i.state, version = s.version + 1, updated_at = now() \
         FROM input i \
         WHERE i.expected >= 0 AND s.fsm = i.fsm AND s.entity_key = i.entity_key AND s.version = i.expected \
         RETURNING i.ord, s.version), \
     fresh AS ( \
         SELECT DISTINCT ON (fsm, entity_key) * FROM input WHERE expected < 0 ORDER BY fsm, entity_key, ord), \
     created AS ( \
         INSERT INTO onex_fsm_state (fsm, entity_key, state, version) \
         SELECT fsm, entity_key, state, 1 FROM fresh ORDER BY ord \
         ON CONFLICT (fsm, entity_key) DO NOTHING RETURNING fsm, entity_key, version), \
     written AS ( \
         SELECT ord, version FROM updated \
         UNION ALL \
         SELECT f.ord, c.version FROM created c JOIN fresh f ON f.fsm = c.fsm AND f.entity_key = c.entity_key), \
     processed AS ( \
         INSERT INTO onex_processed (envelope_id, reply) \
         SELECT i.envelope_id::uuid, i.reply FROM input i JOIN written w ON w.ord = i.ord), \
     outbox AS ( \
         INSERT INTO onex_outbox (topic, message_key, payload, headers) \
         SELECT m.topic, m.message_key, m.payload, m.headers \
         FROM UNNEST($8::int4[], $9::text[], $10::text[], $11::bytea[], $12::jsonb[]) \
             WITH ORDINALITY AS m(ord, topic, message_key, payload, headers, n) \
         JOIN written w ON w.ord = m.ord ORDER BY m.n) \
     SELECT ord, version FROM written";

/// `$1`/`$2`: fsm and entity key of the commits that lost; `$3`: their envelope ids. Rows
/// `('state', fsm, entity key, version)` and `('processed', envelope id, '', 0)`.
const LOSERS: &str = "SELECT 'state', s.fsm, s.entity_key, s.version FROM onex_fsm_state s \
         JOIN UNNEST($1::text[], $2::text[]) AS l(fsm, entity_key) ON s.fsm = l.fsm AND s.entity_key = l.entity_key \
     UNION ALL \
     SELECT 'processed', p.envelope_id::text, '', 0 FROM onex_processed p \
     WHERE p.envelope_id = ANY($3::text[]::uuid[])";

/// The most parameter bytes one statement carries. sqlx does not set `TCP_NODELAY`, and over TLS
/// a message larger than one TLS record (16 KiB) leaves in several writes: Nagle's algorithm then
/// holds the second until the server's delayed ACK, 40 ms later. Batches stay below a record.
const STATEMENT_BYTES: usize = 12 * 1024;

/// `commits` cut into runs whose parameters fit [`STATEMENT_BYTES`] (a commit larger than that
/// goes alone), in order.
pub(super) fn chunks(commits: &[TransitionCommit]) -> Vec<&[TransitionCommit]> {
    if commits.len() < 2 {
        return if commits.is_empty() { Vec::new() } else { vec![commits] };
    }
    let size = |c: &TransitionCommit| {
        let outbox: usize = c.outbox.iter().map(|m| m.payload.len() + m.topic.len() + 64 * (m.headers.len() + 1)).sum();
        c.fsm.len() + c.entity_key.len() + c.state.len() + c.reply.to_string().len() + outbox + 64
    };
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, commit) in commits.iter().enumerate() {
        let n = size(commit);
        if i > start && bytes + n > STATEMENT_BYTES {
            out.push(&commits[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < commits.len() {
        out.push(&commits[start..]);
    }
    out
}

/// Writes `commits` in one statement. `Err` means the statement kept nothing: a duplicate
/// among them, contention, or the store being unavailable (the caller tells which by code).
pub(super) async fn commit(pool: &PgPool, commits: &[TransitionCommit]) -> SpiResult<Vec<SpiResult<CommitOutcome>>> {
    let err = |e| store_error("committing transitions", e);
    let ords: Vec<i32> = (0..commits.len()).map(|i| i32::try_from(i).unwrap_or(i32::MAX)).collect();
    let expected =
        commits.iter().map(|c| c.expected_version.map_or(Ok(-1), db_version)).collect::<SpiResult<Vec<i64>>>()?;
    let messages: Vec<(i32, &onex_spi::OutboundMessage)> =
        commits.iter().zip(&ords).flat_map(|(c, ord)| c.outbox.iter().map(move |m| (*ord, m))).collect();
    let rows: Vec<(i32, i64)> = sqlx::query_as(COMMIT)
        .bind(&ords)
        .bind(commits.iter().map(|c| c.fsm.as_str()).collect::<Vec<_>>())
        .bind(commits.iter().map(|c| c.entity_key.as_str()).collect::<Vec<_>>())
        .bind(expected)
        .bind(commits.iter().map(|c| c.state.as_str()).collect::<Vec<_>>())
        .bind(commits.iter().map(|c| c.envelope_id.to_string()).collect::<Vec<_>>())
        .bind(commits.iter().map(|c| &c.reply).collect::<Vec<&Json>>())
        .bind(messages.iter().map(|(ord, _)| *ord).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| &*m.topic).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| m.key.as_deref()).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| &m.payload[..]).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| headers_json(&m.headers)).collect::<Vec<_>>())
        .fetch_all(pool)
        .await
        .map_err(err)?;
    let written: HashMap<i32, i64> = rows.into_iter().collect();
    if written.len() == commits.len() {
        return ords.iter().map(|ord| Ok(Ok(committed(written[ord])?))).collect();
    }
    let lost = losers(pool, commits, &written).await?;
    ords.iter()
        .zip(commits)
        .map(|(ord, commit)| match written.get(ord) {
            Some(version) => Ok(Ok(committed(*version)?)),
            None if lost.processed.contains(&commit.envelope_id.to_string()) => Ok(Ok(CommitOutcome::Duplicate)),
            None => {
                let found = lost.versions.get(&(commit.fsm.clone(), commit.entity_key.clone())).copied();
                Ok(Err(version_conflict(commit, found)))
            }
        })
        .collect()
}

fn committed(version: i64) -> SpiResult<CommitOutcome> {
    Ok(CommitOutcome::Committed { version: stored_u64(version, "version")? })
}

/// What the commits that lost found: current versions, and which envelopes were processed.
struct Lost {
    versions: HashMap<(String, String), i64>,
    processed: Vec<String>,
}

async fn losers(pool: &PgPool, commits: &[TransitionCommit], written: &HashMap<i32, i64>) -> SpiResult<Lost> {
    let lost: Vec<&TransitionCommit> = commits
        .iter()
        .enumerate()
        .filter(|(i, _)| !written.contains_key(&i32::try_from(*i).unwrap_or(i32::MAX)))
        .map(|(_, c)| c)
        .collect();
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(LOSERS)
        .bind(lost.iter().map(|c| c.fsm.as_str()).collect::<Vec<_>>())
        .bind(lost.iter().map(|c| c.entity_key.as_str()).collect::<Vec<_>>())
        .bind(lost.iter().map(|c| c.envelope_id.to_string()).collect::<Vec<_>>())
        .fetch_all(pool)
        .await
        .map_err(|e| store_error("reading the versions of refused commits", e))?;
    let mut out = Lost { versions: HashMap::new(), processed: Vec::new() };
    for (kind, first, second, version) in rows {
        if kind == "processed" {
            out.processed.push(first);
        } else {
            out.versions.insert((first, second), version);
        }
    }
    Ok(out)
}
