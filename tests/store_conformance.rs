//! The metadata store's contract, checked on both backends with the same tests: SQLite (the
//! embedded default) and PostgreSQL (a throwaway cluster, a database per test) — unique keys,
//! cascades, pages, versioned updates and checks, parents, and racing writers.

mod support;

use std::sync::Arc;

use sigil::store::{
    Change, Cursor, Kind, ListQuery, Metadata, PgStore, Record, SqliteStore, StoreError, Write,
};
use support::postgres::Postgres;

/// Runs each test body once per backend.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::postgres()) })*
        }
    };
}

on_both!(
    unique_keys_conflict_and_free_on_delete,
    delete_cascades_to_descendants_only,
    pages_newest_first_in_both_directions,
    update_replaces_document_and_keys,
    updates_and_checks_are_conditional_on_the_version_read,
    no_record_is_inserted_under_a_missing_parent,
    racing_writers_one_wins_each_key_and_each_version,
    scans_visit_every_record_in_order,
    purge_deletes_only_older_records_of_the_kind,
    lookups_in_bulk_and_of_hostile_strings,
    a_lease_has_one_holder_until_it_expires,
    the_feed_holds_each_committed_change_in_order,
    concurrent_changes_take_consecutive_positions,
    a_reader_behind_the_pruned_feed_is_told,
);

/// A store and what keeps it alive.
struct Store {
    store: Arc<dyn Metadata>,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Store {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("meta.db")).expect("open");
    Store {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

fn postgres() -> Store {
    let url = Postgres::shared().fresh_database();
    Store {
        store: Arc::new(PgStore::open(&url).expect("open")),
        _dir: None,
    }
}

fn rec(kind: Kind, sid: &str, parent: Option<&str>) -> Record {
    Record::new(
        kind,
        sid.into(),
        "AC1".into(),
        parent.map(Into::into),
        &serde_json::json!({"n": sid}),
    )
}

fn query(kind: Kind, parent: Option<&str>, cursor: Cursor, limit: u32) -> ListQuery {
    ListQuery {
        kind,
        account_sid: "AC1".into(),
        parent_sid: parent.map(Into::into),
        tag: None,
        created_from: None,
        created_to: None,
        cursor,
        limit,
    }
}

fn sids(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.sid.as_str()).collect()
}

fn unique_keys_conflict_and_free_on_delete(s: Store) {
    let s = s.store;
    let mut a = rec(Kind::Service, "ZS1", None);
    a.unique = vec!["svc:x".into()];
    s.commit(vec![Write::Insert(a)]).expect("insert");
    let mut b = rec(Kind::Service, "ZS2", None);
    b.unique = vec!["svc:x".into()];
    assert!(matches!(
        s.commit(vec![Write::Insert(b.clone())]),
        Err(StoreError::Conflict(k)) if k == "svc:x"
    ));
    // The failed batch left nothing behind.
    assert!(s.get("ZS2").expect("get").is_none());
    assert_eq!(
        s.find_unique("svc:x").expect("find").map(|r| r.sid),
        Some("ZS1".into())
    );
    // A taken SID is a conflict too.
    assert!(matches!(
        s.commit(vec![Write::Insert(rec(Kind::Service, "ZS1", None))]),
        Err(StoreError::Conflict(k)) if k == "ZS1"
    ));
    s.commit(vec![Write::Delete("ZS1".into())]).expect("delete");
    s.commit(vec![Write::Insert(b)]).expect("key is free again");
}

fn delete_cascades_to_descendants_only(s: Store) {
    let s = s.store;
    let mut var = rec(Kind::Variable, "ZV1", Some("ZE1"));
    var.unique = vec!["var:k".into()];
    s.commit(vec![
        Write::Insert(rec(Kind::Service, "ZS1", None)),
        Write::Insert(rec(Kind::Environment, "ZE1", Some("ZS1"))),
        Write::Insert(var),
        Write::Insert(rec(Kind::Service, "ZS2", None)),
    ])
    .expect("insert");
    s.commit(vec![Write::Delete("ZS1".into())]).expect("delete");
    for gone in ["ZS1", "ZE1", "ZV1"] {
        assert!(s.get(gone).expect("get").is_none(), "{gone}");
    }
    assert!(s.find_unique("var:k").expect("find").is_none());
    assert!(s.get("ZS2").expect("get").is_some());
    // Deleting what is gone: another writer got there first.
    assert!(matches!(
        s.commit(vec![Write::Delete("ZS1".into())]),
        Err(StoreError::Stale(_))
    ));
}

fn pages_newest_first_in_both_directions(s: Store) {
    let s = s.store;
    let writes = (1..=5)
        .map(|i| Write::Insert(rec(Kind::Service, &format!("ZS{i}"), None)))
        .collect();
    s.commit(writes).expect("insert");
    let first = s
        .list(&query(Kind::Service, None, Cursor::Offset(0), 2))
        .expect("list");
    assert_eq!(sids(&first), ["ZS5", "ZS4"]);
    let second = s
        .list(&query(Kind::Service, None, Cursor::After(first[1].seq), 2))
        .expect("list");
    assert_eq!(sids(&second), ["ZS3", "ZS2"]);
    let back = s
        .list(&query(
            Kind::Service,
            None,
            Cursor::Before(second[0].seq),
            2,
        ))
        .expect("list");
    assert_eq!(sids(&back), ["ZS5", "ZS4"]);
    let offset = s
        .list(&query(Kind::Service, None, Cursor::Offset(4), 2))
        .expect("list");
    assert_eq!(sids(&offset), ["ZS1"]);
    // Filters: parent, tag, creation time.
    let mut tagged = rec(Kind::Log, "NO1", Some("ZS1"));
    tagged.tag = Some("ZH1".into());
    tagged.created = 100;
    let mut other = rec(Kind::Log, "NO2", Some("ZS1"));
    other.created = 200;
    s.commit(vec![Write::Insert(tagged), Write::Insert(other)])
        .expect("insert");
    let mut q = query(Kind::Log, Some("ZS1"), Cursor::Offset(0), 10);
    assert_eq!(sids(&s.list(&q).expect("list")), ["NO2", "NO1"]);
    q.tag = Some("ZH1".into());
    assert_eq!(sids(&s.list(&q).expect("list")), ["NO1"]);
    q.tag = None;
    q.created_from = Some(150);
    assert_eq!(sids(&s.list(&q).expect("list")), ["NO2"]);
    q.created_from = None;
    q.created_to = Some(150);
    assert_eq!(sids(&s.list(&q).expect("list")), ["NO1"]);
    q.parent_sid = Some("ZS2".into());
    assert!(s.list(&q).expect("list").is_empty());
}

fn update_replaces_document_and_keys(s: Store) {
    let s = s.store;
    s.commit(vec![Write::Insert(rec(Kind::Environment, "ZE1", None))])
        .expect("parent");
    let mut a = rec(Kind::Variable, "ZV1", Some("ZE1"));
    a.unique = vec!["k:a".into()];
    s.commit(vec![Write::Insert(a)]).expect("insert");
    let mut a = s.get("ZV1").expect("get").expect("present");
    assert_eq!(a.version, 1);
    a.unique = vec!["k:b".into()];
    a.encode(&serde_json::json!({"n": 2}));
    s.commit(vec![Write::Update(a)]).expect("update");
    let got = s.get("ZV1").expect("get").expect("present");
    assert_eq!(got.unique, ["k:b"]);
    assert_eq!(got.data, br#"{"n":2}"#);
    assert_eq!(got.version, 2);
    assert!(s.find_unique("k:a").expect("find").is_none());
    assert_eq!(
        s.find_unique("k:b").expect("find").map(|r| r.sid),
        Some("ZV1".into())
    );
}

fn updates_and_checks_are_conditional_on_the_version_read(s: Store) {
    let s = s.store;
    s.commit(vec![
        Write::Insert(rec(Kind::Service, "ZS1", None)),
        Write::Insert(rec(Kind::Build, "ZB1", Some("ZS1"))),
    ])
    .expect("insert");
    let read_a = s.get("ZS1").expect("get").expect("present");
    let read_b = read_a.clone();
    let mut a = read_a.clone();
    a.encode(&serde_json::json!({"n": "a"}));
    s.commit(vec![Write::Update(a)])
        .expect("the first writer wins");
    let mut b = read_b;
    b.encode(&serde_json::json!({"n": "b"}));
    assert!(matches!(
        s.commit(vec![Write::Update(b)]),
        Err(StoreError::Stale(sid)) if sid == "ZS1"
    ));
    assert_eq!(
        s.get("ZS1").expect("get").expect("present").data,
        br#"{"n":"a"}"#
    );
    // A check of a changed record fails the whole batch: the insert before it is undone.
    assert!(matches!(
        s.commit(vec![
            Write::Insert(rec(Kind::Service, "ZS9", None)),
            Write::check(&read_a),
        ]),
        Err(StoreError::Stale(_))
    ));
    assert!(s.get("ZS9").expect("get").is_none());
    // A check of what is current passes; of a record gone, fails.
    let build = s.get("ZB1").expect("get").expect("present");
    s.commit(vec![
        Write::check(&build),
        Write::Insert(rec(Kind::Service, "ZS9", None)),
    ])
    .expect("unchanged");
    s.commit(vec![Write::Delete("ZB1".into())]).expect("delete");
    assert!(matches!(
        s.commit(vec![Write::check(&build)]),
        Err(StoreError::Stale(_))
    ));
    // An update of a record gone is stale too.
    let mut gone = build;
    gone.encode(&serde_json::json!({}));
    assert!(matches!(
        s.commit(vec![Write::Update(gone)]),
        Err(StoreError::Stale(_))
    ));
}

fn no_record_is_inserted_under_a_missing_parent(s: Store) {
    let s = s.store;
    assert!(matches!(
        s.commit(vec![Write::Insert(rec(Kind::Environment, "ZE1", Some("ZS404")))]),
        Err(StoreError::Stale(p)) if p == "ZS404"
    ));
    assert!(s.get("ZE1").expect("get").is_none());
    // Appending skips it, and keeps the rest of the batch.
    s.commit(vec![Write::Insert(rec(Kind::Environment, "ZE2", None))])
        .expect("parent");
    s.commit(vec![
        Write::Append(rec(Kind::Log, "NO1", Some("ZE404"))),
        Write::Append(rec(Kind::Log, "NO2", Some("ZE2"))),
    ])
    .expect("append");
    assert!(s.get("NO1").expect("get").is_none());
    assert!(s.get("NO2").expect("get").is_some());
}

/// Eight threads at once: inserting one unique key, and updating one record from one read.
fn racing_writers_one_wins_each_key_and_each_version(s: Store) {
    let s = s.store;
    s.commit(vec![Write::Insert(rec(Kind::Service, "ZS0", None))])
        .expect("insert");
    let read = s.get("ZS0").expect("get").expect("present");
    let results: Vec<(bool, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (s, read) = (Arc::clone(&s), read.clone());
                scope.spawn(move || {
                    let mut r = rec(Kind::Service, &format!("ZS{}", i + 1), None);
                    r.unique = vec!["svc:same".into()];
                    let inserted = match s.commit(vec![Write::Insert(r)]) {
                        Ok(()) => true,
                        Err(StoreError::Conflict(k)) => {
                            assert_eq!(k, "svc:same");
                            false
                        }
                        Err(e) => panic!("{e}"),
                    };
                    let mut u = read;
                    u.encode(&serde_json::json!({"writer": i}));
                    let updated = match s.commit(vec![Write::Update(u)]) {
                        Ok(()) => true,
                        Err(StoreError::Stale(_)) => false,
                        Err(e) => panic!("{e}"),
                    };
                    (inserted, updated)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(results.iter().filter(|r| r.0).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.1).count(), 1, "{results:?}");
    assert_eq!(s.get("ZS0").expect("get").expect("present").version, 2);
}

fn scans_visit_every_record_in_order(s: Store) {
    let s = s.store;
    let writes = (1..=300)
        .map(|i| Write::Insert(rec(Kind::Service, &format!("ZS{i:03}"), None)))
        .collect();
    s.commit(writes).expect("insert");
    let mut seen = Vec::new();
    s.scan_each(Kind::Service, &mut |r| {
        seen.push(r.sid);
        Ok(())
    })
    .expect("scan");
    let want: Vec<String> = (1..=300).map(|i| format!("ZS{i:03}")).collect();
    assert_eq!(seen, want);
    // The visitor's error stops the scan and comes back.
    let mut n = 0;
    let r = s.scan_each(Kind::Service, &mut |_| {
        n += 1;
        if n == 10 {
            return Err(StoreError::Corrupt("stop".into()));
        }
        Ok(())
    });
    assert!(matches!(r, Err(StoreError::Corrupt(_))));
    assert_eq!(n, 10);
    assert!(s.scan(Kind::Build).expect("scan").is_empty());
}

fn purge_deletes_only_older_records_of_the_kind(s: Store) {
    let s = s.store;
    let mut old = rec(Kind::Log, "NO1", None);
    old.created = 10;
    let mut new = rec(Kind::Log, "NO2", None);
    new.created = 30;
    let mut svc = rec(Kind::Service, "ZS1", None);
    svc.created = 10;
    s.commit(vec![
        Write::Insert(old),
        Write::Insert(new),
        Write::Insert(svc),
    ])
    .expect("insert");
    assert_eq!(s.purge_before(Kind::Log, 20).expect("purge"), 1);
    assert!(s.get("NO1").expect("get").is_none());
    assert!(s.get("NO2").expect("get").is_some());
    assert!(s.get("ZS1").expect("get").is_some());
}

fn lookups_in_bulk_and_of_hostile_strings(s: Store) {
    let s = s.store;
    s.commit(vec![
        Write::Insert(rec(Kind::Service, "ZS1", None)),
        Write::Insert(rec(Kind::Service, "ZS2", None)),
    ])
    .expect("insert");
    let got = s
        .get_many(&["ZS2".into(), "ZS404".into(), "ZS1".into(), "ZS2".into()])
        .expect("get_many");
    let sids: Vec<Option<&str>> = got
        .iter()
        .map(|r| r.as_ref().map(|r| r.sid.as_str()))
        .collect();
    assert_eq!(sids, [Some("ZS2"), None, Some("ZS1"), Some("ZS2")]);
    // A NUL (from a hostile path) matches nothing and is no error.
    assert!(s.get("ZS1\0").expect("get").is_none());
    assert!(s.find_unique("svc:\0").expect("find").is_none());
    assert_eq!(s.get_many(&["ZS1\0".into()]).expect("get_many"), [None]);
    let mut q = query(Kind::Service, None, Cursor::Offset(0), 10);
    q.account_sid = "AC\0".into();
    assert!(s.list(&q).expect("list").is_empty());
}

#[test]
fn a_postgres_schema_newer_than_the_binary_is_refused() {
    let pg = Postgres::shared();
    let url = pg.fresh_database();
    drop(PgStore::open(&url).expect("created at the current version"));
    PgStore::open(&url).expect("opened again: nothing to migrate");
    let db = url.rsplit('/').next().expect("name");
    pg.sql(db, "UPDATE sigil_schema SET version = version + 1");
    let Err(e) = PgStore::open(&url) else {
        panic!("a newer schema was opened")
    };
    assert!(e.to_string().contains("newer than this sigil knows"), "{e}");
    assert!(!e.to_string().contains(support::postgres::PASSWORD), "{e}");
}

fn a_lease_has_one_holder_until_it_expires(s: Store) {
    let s = s.store;
    assert!(s.try_lease("job", "a", 100, 60).expect("lease"));
    assert!(
        !s.try_lease("job", "b", 120, 60).expect("lease"),
        "a holds it"
    );
    assert!(
        s.try_lease("job", "a", 150, 60).expect("lease"),
        "a extends it"
    );
    assert!(
        !s.try_lease("job", "b", 200, 60).expect("lease"),
        "a holds it until 210"
    );
    assert!(
        s.try_lease("other", "b", 200, 60).expect("lease"),
        "another lease"
    );
    assert!(
        s.try_lease("job", "b", 211, 60).expect("lease"),
        "expired: b takes it"
    );
    assert!(!s.try_lease("job", "a", 212, 60).expect("lease"));
    // Racing for a free lease: one winner.
    let winners = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = Arc::clone(&s);
                scope.spawn(move || {
                    s.try_lease("race", &format!("h{i}"), 1000, 60)
                        .expect("lease")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .filter(|w| *w)
            .count()
    });
    assert_eq!(winners, 1);
}

#[test]
fn postgres_over_tls_checks_the_server_certificate() {
    let [ca, _, chain, key] = sigil::server::tls::generate_dev_certs().expect("certificates");
    let pg = Postgres::start_tls_only(&chain, &key);
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).expect("ca");
    let url = pg.database("tls");
    let list = |url: &str, ca: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"));
        cmd.args(["account", "list", "--metadata", url])
            .env_remove("SIGIL_METADATA_CA")
            .env_remove("SIGIL_DATA");
        if let Some(ca) = ca {
            cmd.env("SIGIL_METADATA_CA", ca);
        }
        support::run_cli(&mut cmd)
    };
    // The cluster refuses plain connections; with its CA trusted, TLS is used and works.
    let (code, _, err) = list(&format!("{url}?sslmode=require"), Some(&ca_file));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = list(&url, Some(&ca_file));
    assert_eq!(
        code, 0,
        "the default (prefer) takes TLS when offered: {err}"
    );
    // A certificate from an unknown CA is refused, and so is TLS switched off.
    let (code, _, err) = list(&format!("{url}?sslmode=require"), None);
    assert_ne!(code, 0, "an unknown CA was trusted");
    assert!(!err.contains(support::postgres::PASSWORD), "{err}");
    let (code, _, _) = list(&format!("{url}?sslmode=disable"), Some(&ca_file));
    assert_ne!(code, 0, "a plain connection was accepted");
}

fn feed(s: &dyn Metadata, after: i64) -> Vec<(i64, Kind, String)> {
    let page = s.changes_after(after, 1000).expect("feed");
    assert!(!page.gap);
    page.changes
        .into_iter()
        .map(
            |Change {
                 position,
                 kind,
                 sid,
                 ..
             }| (position, kind, sid),
        )
        .collect()
}

/// Inserts, updates and deletes of Environments, Accounts and API keys — a cascaded delete
/// included — enter the feed in commit order; other kinds and a failed batch do not.
fn the_feed_holds_each_committed_change_in_order(s: Store) {
    let s = s.store;
    let start = s.changes_after(0, 1).expect("feed").head;
    s.commit(vec![
        Write::Insert(rec(Kind::Account, "AC1", None)),
        Write::Insert(rec(Kind::Service, "ZS1", None)),
        Write::Insert(rec(Kind::Environment, "ZE1", Some("ZS1"))),
        Write::Insert(rec(Kind::Environment, "ZE2", Some("ZS1"))),
        Write::Insert(rec(Kind::Build, "ZB1", Some("ZS1"))),
    ])
    .expect("insert");
    let mut env = s.get("ZE1").expect("get").expect("present");
    env.encode(&serde_json::json!({"build": "ZB1"}));
    s.commit(vec![Write::Update(env.clone())]).expect("update");
    // Refused (stale version): no change recorded.
    assert!(s.commit(vec![Write::Update(env)]).is_err());
    s.commit(vec![Write::Delete("ZS1".into())]).expect("delete");
    let got = feed(s.as_ref(), start);
    let kinds: Vec<(Kind, &str)> = got.iter().map(|(_, k, sid)| (*k, sid.as_str())).collect();
    assert_eq!(
        &kinds[..4],
        [
            (Kind::Account, "AC1"),
            (Kind::Environment, "ZE1"),
            (Kind::Environment, "ZE2"),
            (Kind::Environment, "ZE1"),
        ]
    );
    let mut deleted: Vec<&str> = kinds[4..].iter().map(|(_, sid)| *sid).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["ZE1", "ZE2"]);
    let positions: Vec<i64> = got.iter().map(|c| c.0).collect();
    let expected: Vec<i64> = (start + 1..=start + 6).collect();
    assert_eq!(positions, expected);
    let page = s.changes_after(start + 2, 2).expect("feed");
    assert_eq!(page.head, start + 6);
    assert_eq!(page.changes.len(), 2);
    assert_eq!(page.changes[0].position, start + 3);
    assert!(s
        .changes_after(start + 6, 10)
        .expect("feed")
        .changes
        .is_empty());
}

/// Eight writers at once: every change gets its own position, with no hole (a reader that
/// read past a hole could miss the change that fills it).
fn concurrent_changes_take_consecutive_positions(s: Store) {
    let s = s.store;
    let start = s.changes_after(0, 1).expect("feed").head;
    std::thread::scope(|scope| {
        for t in 0..8 {
            let s = Arc::clone(&s);
            scope.spawn(move || {
                for i in 0..10 {
                    s.commit(vec![Write::Insert(rec(
                        Kind::ApiKey,
                        &format!("SK{t}x{i}"),
                        None,
                    ))])
                    .expect("insert");
                }
            });
        }
    });
    let got = feed(s.as_ref(), start);
    let positions: Vec<i64> = got.iter().map(|c| c.0).collect();
    let expected: Vec<i64> = (start + 1..=start + 80).collect();
    assert_eq!(positions, expected);
}

fn a_reader_behind_the_pruned_feed_is_told(s: Store) {
    let s = s.store;
    for i in 0..3 {
        s.commit(vec![Write::Insert(rec(
            Kind::Account,
            &format!("AC{i}"),
            None,
        ))])
        .expect("insert");
    }
    let head = s.changes_after(0, 1).expect("feed").head;
    // Everything recorded before the far future: all but the newest go.
    assert_eq!(s.prune_changes(i64::MAX).expect("prune"), 2);
    let behind = s.changes_after(head - 3, 10).expect("feed");
    assert!(behind.gap);
    let current = s.changes_after(head - 1, 10).expect("feed");
    assert!(!current.gap);
    assert_eq!(current.changes.len(), 1);
    assert!(!s.changes_after(head, 10).expect("feed").gap);
}

/// PostgreSQL wakes feed readers (LISTEN/NOTIFY) with the position of each change.
#[test]
fn postgres_wakes_feed_readers() {
    let s = postgres().store;
    let mut wakeups = s.feed_wakeups().expect("PostgreSQL notifies");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // The listener is connected once it wakes readers the first time.
        tokio::time::timeout(std::time::Duration::from_secs(10), wakeups.changed())
            .await
            .expect("listening")
            .expect("sender alive");
        for i in 0..3 {
            s.commit(vec![Write::Insert(rec(
                Kind::Account,
                &format!("AC{i}"),
                None,
            ))])
            .expect("insert");
        }
        let head = s.changes_after(0, 1).expect("feed").head;
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            wakeups.wait_for(|p| *p >= head),
        )
        .await
        .expect("notified")
        .expect("sender alive");
    });
}
