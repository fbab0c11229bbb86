//! Round trips of every supported type: inserted through parameters, selected back as JSON.

use serde_json::json;

use super::{TempDir, drop_table, lite, ok, pg, unique};

#[tokio::test]
async fn postgres_values_come_back_as_typed_json() {
    let db = pg(json!({})).await;
    let table = unique("types");
    ok(
        &db,
        "db.execute",
        &format!(
            "CREATE TABLE {table} (id int4 PRIMARY KEY, i2 int2, i4 int4, i8 int8, n numeric, f4 float4, \
             f8 float8, b bool, t text, vc varchar(20), c char(3), nm name, u uuid, tz timestamptz, \
             ts timestamp, d date, j json, jb jsonb, by bytea, ai int4[], at text[], an numeric[], \
             a2 int8[], atz timestamptz[], nul int4)"
        ),
        json!([]),
    )
    .await;
    let inserted = ok(
        &db,
        "db.execute",
        &format!(
            "INSERT INTO {table} VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8, $9, $10, $11, $12, $13::uuid, \
             $14::timestamptz, $15::timestamp, $16::date, $17::json, $18, decode($19, 'base64'), $20::int4[], \
             $21::text[], $22::numeric[], $23::int8[], $24::timestamptz[], $25)"
        ),
        json!([
            1,
            32767,
            -2147483648i64,
            9223372036854775807i64,
            "12345678901234567890.123456789",
            1.5,
            0.1,
            true,
            "héllo ✓ 'quoted'",
            "varchar",
            "ab",
            "a_name",
            "0190a8c5-3f1e-7c2a-9b4d-112233445566",
            "2024-02-29T12:34:56.789012+02:00",
            "2024-02-29 12:34:56.5",
            "2024-02-29",
            {"a": [1, 2.5, "x", null]},
            {"k": {"n": 1}, "list": [true, false]},
            "AAEC/w==",
            "{1,NULL,3}",
            "{a,\"b c\",NULL}",
            "{1.50,-0.001}",
            "{{1,2},{3,4}}",
            "{\"2024-01-01 00:00:00+00\",NULL}",
            null
        ]),
    )
    .await;
    assert_eq!(inserted, json!({"rows_affected": 1}));
    let reply = ok(&db, "db.query", &format!("SELECT * FROM {table} WHERE id = $1"), json!([1])).await;
    assert_eq!(reply["row_count"], 1, "{reply}");
    let row = &reply["rows"][0];
    let expected = json!({
        "id": 1,
        "i2": 32767,
        "i4": -2147483648i64,
        "i8": 9223372036854775807i64,
        "n": "12345678901234567890.123456789",
        "f4": 1.5,
        "f8": 0.1,
        "b": true,
        "t": "héllo ✓ 'quoted'",
        "vc": "varchar",
        "c": "ab ",
        "nm": "a_name",
        "u": "0190a8c5-3f1e-7c2a-9b4d-112233445566",
        "tz": "2024-02-29T10:34:56.789012Z",
        "ts": "2024-02-29T12:34:56.500",
        "d": "2024-02-29",
        "j": {"a": [1, 2.5, "x", null]},
        "jb": {"k": {"n": 1}, "list": [true, false]},
        "by": "AAEC/w==",
        "ai": [1, null, 3],
        "at": ["a", "b c", null],
        "an": ["1.50", "-0.001"],
        "a2": [[1, 2], [3, 4]],
        "atz": ["2024-01-01T00:00:00Z", null],
        "nul": null,
    });
    for (column, want) in expected.as_object().unwrap() {
        assert_eq!(&row[column], want, "column {column} of {row}");
    }
    assert_eq!(row.as_object().unwrap().len(), expected.as_object().unwrap().len(), "{row}");
    drop_table(&db, &table).await;
}

#[tokio::test]
async fn postgres_arrays_of_every_element_type_and_special_values() {
    let db = pg(json!({})).await;
    let reply = ok(
        &db,
        "db.query",
        "SELECT ARRAY[true, false] AS ab, ARRAY[1::int2] AS ai2, ARRAY[1.25::float4] AS af4, \
         ARRAY[2.5::float8] AS af8, ARRAY['00000000-0000-0000-0000-000000000001'::uuid] AS au, \
         ARRAY['2024-01-02'::date] AS ad, ARRAY['2024-01-02 03:04:05'::timestamp] AS ats, \
         ARRAY['{\"a\":1}'::jsonb, NULL] AS ajb, ARRAY['\\x00ff'::bytea] AS aby, ARRAY['x'::varchar] AS avc, \
         '{}'::int4[] AS empty, 'NaN'::float8 AS nan, 'infinity'::timestamptz AS inf, 'NaN'::numeric AS nnan, \
         0.000012::numeric AS small, -5::numeric AS neg, $1::text AS param",
        json!(["p"]),
    )
    .await;
    assert_eq!(
        reply["rows"][0],
        json!({
            "ab": [true, false], "ai2": [1], "af4": [1.25], "af8": [2.5],
            "au": ["00000000-0000-0000-0000-000000000001"], "ad": ["2024-01-02"],
            "ats": ["2024-01-02T03:04:05"], "ajb": [{"a": 1}, null], "aby": ["AP8="], "avc": ["x"],
            "empty": [], "nan": "NaN", "inf": "infinity", "nnan": "NaN", "small": "0.000012", "neg": "-5",
            "param": "p",
        })
    );
}

#[tokio::test]
async fn postgres_types_without_a_json_form_are_named_with_a_cast_to_use() {
    let db = pg(json!({})).await;
    let e = super::call(&db, "db.query", json!({"sql": "SELECT '1 day'::interval AS span"})).await.unwrap_err();
    assert_eq!(e.code(), onex_infra::error::codes::DB_UNSUPPORTED_TYPE.as_str());
    assert!(
        e.message().contains("`span`") && e.message().contains("interval") && e.message().contains("::text"),
        "{e}"
    );
    let text = ok(&db, "db.query", "SELECT '1 day'::interval::text AS span", json!([])).await;
    assert_eq!(text["rows"][0]["span"], "1 day");
}

#[tokio::test]
async fn the_same_sql_bound_with_other_json_types_is_not_misread() {
    // sqlx caches statements by SQL text; a later call with a string where an integer was
    // must not have its bytes read as the integer.
    let db = pg(json!({"max_connections": 1})).await;
    let sql = "SELECT $1::text AS v";
    assert_eq!(ok(&db, "db.query", sql, json!([42])).await["rows"][0]["v"], "42");
    assert_eq!(ok(&db, "db.query", sql, json!(["abcdefgh"])).await["rows"][0]["v"], "abcdefgh");
    assert_eq!(ok(&db, "db.query", sql, json!([true])).await["rows"][0]["v"], "true");
    assert_eq!(ok(&db, "db.query", sql, json!([null])).await["rows"][0]["v"], json!(null));
}

#[tokio::test]
async fn sqlite_values_come_back_by_storage_class() {
    let dir = TempDir::new("types");
    let db = lite(&dir, json!({})).await;
    ok(
        &db,
        "db.execute",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, j TEXT, f INTEGER, n INTEGER)",
        json!([]),
    )
    .await;
    let inserted = ok(
        &db,
        "db.execute",
        "INSERT INTO t VALUES ($1, $2, $3, $4, X'0001FF', $5, $6, $7)",
        json!([1, 9007199254740993i64, 2.5, "héllo ✓", {"a": [1, null]}, true, null]),
    )
    .await;
    assert_eq!(inserted["rows_affected"], 1);
    let reply = ok(&db, "db.query", "SELECT * FROM t WHERE id = ?1", json!([1])).await;
    assert_eq!(
        reply["rows"][0],
        json!({"id": 1, "i": 9007199254740993i64, "r": 2.5, "t": "héllo ✓", "b": "AAH/", "j": "{\"a\":[1,null]}", "f": 1, "n": null})
    );
    assert!(dir.0.join("data/onex-data.db").exists(), "a relative sqlite:// path lands in the data directory");
}
