//! Accounts and their credentials: auth tokens (primary + secondary, for rotation) and API keys.
//!
//! Auth tokens are kept in clear text because the edge needs them as HMAC keys for
//! `X-Twilio-Signature`; API key secrets are only ever compared, so only their sha256 is kept.
//! Nothing here logs a token or a secret.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::sid::{hex, random_hex, Prefix};
use crate::store::{Kind, ListQuery, Metadata, Record, StoreError, Write};

/// The stored fields of an Account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountData {
    /// A name to remember it by.
    pub friendly_name: String,
    /// The primary auth token.
    pub auth_token: String,
    /// The secondary auth token, while one exists (rotation).
    pub secondary_auth_token: Option<String>,
}

/// The stored fields of an API key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyData {
    /// A name to remember it by.
    pub friendly_name: String,
    /// sha256 of the secret, lowercase hex.
    pub secret_sha256: String,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No such account (or key).
    #[error("no account or key {0}")]
    NotFound(String),
    /// The operation needs a secondary token and there is none.
    #[error("account {0} has no secondary auth token")]
    NoSecondary(String),
    /// A SID or token is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn new_token() -> String {
    random_hex(16)
}

/// sha256 of `text`, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Whether two strings are equal, in time that does not depend on where they differ.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Loads an account record and its data.
pub fn load(
    store: &dyn Metadata,
    account_sid: &str,
) -> Result<(Record, AccountData), AccountError> {
    let sid = Prefix::Account
        .parse(account_sid)
        .ok_or_else(|| AccountError::Invalid(format!("{account_sid:?} is not an Account SID")))?;
    match store.get(&sid)? {
        Some(rec) if rec.kind == Kind::Account => {
            let data = rec.decode()?;
            Ok((rec, data))
        }
        _ => Err(AccountError::NotFound(sid)),
    }
}

/// Creates an account. `sid`/`token` fix its credentials (for `SIGIL_ACCOUNT_SID` /
/// `SIGIL_AUTH_TOKEN`); otherwise they are generated. Returns (sid, token).
pub fn create(
    store: &dyn Metadata,
    friendly_name: &str,
    sid: Option<&str>,
    token: Option<&str>,
) -> Result<(String, String), AccountError> {
    let sid = match sid {
        Some(s) => Prefix::Account
            .parse(s)
            .ok_or_else(|| AccountError::Invalid(format!("{s:?} is not an Account SID")))?,
        None => Prefix::Account.generate(),
    };
    let token = match token {
        Some(t) if t.len() >= 16 && t.bytes().all(|b| b.is_ascii_graphic()) => t.to_owned(),
        Some(_) => {
            return Err(AccountError::Invalid(
                "an auth token must be at least 16 printable ASCII characters".into(),
            ))
        }
        None => new_token(),
    };
    let data = AccountData {
        friendly_name: friendly_name.to_owned(),
        auth_token: token.clone(),
        secondary_auth_token: None,
    };
    let rec = Record::new(Kind::Account, sid.clone(), sid.clone(), None, &data);
    store.commit(vec![Write::Insert(rec)])?;
    Ok((sid, token))
}

/// At server start: makes sure an account exists. With a fixed SID and token, that account
/// exists with that primary token afterwards. Returns the credentials when it created an
/// account whose token nobody has seen yet (to print once).
pub fn bootstrap(
    store: &dyn Metadata,
    fixed: Option<(&str, &str)>,
) -> Result<Option<(String, String)>, AccountError> {
    if let Some((sid, token)) = fixed {
        match load(store, sid) {
            Ok((mut rec, mut data)) => {
                if !ct_eq(&data.auth_token, token) {
                    data.auth_token = token.to_owned();
                    rec.encode(&data);
                    store.commit(vec![Write::Update(rec)])?;
                }
            }
            Err(AccountError::NotFound(_)) => {
                match create(store, "sigil account", Some(sid), Some(token)) {
                    // Another process starting with the same flags created it first.
                    Err(AccountError::Store(StoreError::Conflict(_))) | Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        return Ok(None);
    }
    if !store.scan(Kind::Account)?.is_empty() {
        return Ok(None);
    }
    // Several processes may start at once on one empty shared store: the first account holds
    // a unique key, so exactly one of them creates it (and prints its token).
    let sid = Prefix::Account.generate();
    let token = new_token();
    let data = AccountData {
        friendly_name: "sigil account".to_owned(),
        auth_token: token.clone(),
        secondary_auth_token: None,
    };
    let mut rec = Record::new(Kind::Account, sid.clone(), sid.clone(), None, &data);
    rec.unique = vec![FIRST_ACCOUNT.to_owned()];
    match store.commit(vec![Write::Insert(rec)]) {
        Ok(()) => Ok(Some((sid, token))),
        Err(StoreError::Conflict(key)) if key == FIRST_ACCOUNT => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The unique key of the account `sigil serve` creates on an empty store.
const FIRST_ACCOUNT: &str = "first-account";

/// Every account: (sid, friendly name).
pub fn list(store: &dyn Metadata) -> Result<Vec<(String, String)>, AccountError> {
    store
        .scan(Kind::Account)?
        .into_iter()
        .map(|rec| {
            let data: AccountData = rec.decode()?;
            Ok((rec.sid, data.friendly_name))
        })
        .collect()
}

/// Creates an API key; returns (key sid, secret).
pub fn create_key(
    store: &dyn Metadata,
    account_sid: &str,
    friendly_name: &str,
) -> Result<(String, String), AccountError> {
    let (account, _) = load(store, account_sid)?;
    let sid = Prefix::ApiKey.generate();
    let secret = random_hex(16);
    let data = ApiKeyData {
        friendly_name: friendly_name.to_owned(),
        secret_sha256: sha256_hex(&secret),
    };
    let rec = Record::new(
        Kind::ApiKey,
        sid.clone(),
        account.sid.clone(),
        Some(account.sid),
        &data,
    );
    store.commit(vec![Write::Insert(rec)])?;
    Ok((sid, secret))
}

/// Deletes an API key of an account.
pub fn delete_key(
    store: &dyn Metadata,
    account_sid: &str,
    key_sid: &str,
) -> Result<(), AccountError> {
    let (account, _) = load(store, account_sid)?;
    match Prefix::ApiKey
        .parse(key_sid)
        .map(|s| store.get(&s))
        .transpose()?
    {
        Some(Some(rec)) if rec.kind == Kind::ApiKey && rec.account_sid == account.sid => {
            store.commit(vec![Write::Delete(rec.sid)])?;
            Ok(())
        }
        _ => Err(AccountError::NotFound(key_sid.to_owned())),
    }
}

/// Creates (or replaces) the secondary auth token; returns it.
pub fn create_secondary(store: &dyn Metadata, account_sid: &str) -> Result<String, AccountError> {
    let (mut rec, mut data) = load(store, account_sid)?;
    let token = new_token();
    data.secondary_auth_token = Some(token.clone());
    rec.encode(&data);
    store.commit(vec![Write::Update(rec)])?;
    Ok(token)
}

/// Promotes the secondary token to primary; the old primary stops working, and so do the
/// Console sessions signed in with the account's tokens.
pub fn promote_secondary(store: &dyn Metadata, account_sid: &str) -> Result<(), AccountError> {
    again_if_stale(|| promote_once(store, account_sid))
}

fn promote_once(store: &dyn Metadata, account_sid: &str) -> Result<(), AccountError> {
    let (mut rec, mut data) = load(store, account_sid)?;
    let secondary = data
        .secondary_auth_token
        .take()
        .ok_or_else(|| AccountError::NoSecondary(rec.sid.clone()))?;
    data.auth_token = secondary;
    rec.encode(&data);
    let mut writes = token_sessions_ended(store, &rec.sid)?;
    writes.push(Write::Update(rec));
    store.commit(writes)?;
    Ok(())
}

/// Removes the secondary token, ending the Console sessions signed in with a token.
pub fn remove_secondary(store: &dyn Metadata, account_sid: &str) -> Result<(), AccountError> {
    again_if_stale(|| remove_secondary_once(store, account_sid))
}

fn remove_secondary_once(store: &dyn Metadata, account_sid: &str) -> Result<(), AccountError> {
    let (mut rec, mut data) = load(store, account_sid)?;
    if data.secondary_auth_token.take().is_none() {
        return Err(AccountError::NoSecondary(rec.sid));
    }
    rec.encode(&data);
    let mut writes = token_sessions_ended(store, &rec.sid)?;
    writes.push(Write::Update(rec));
    store.commit(writes)?;
    Ok(())
}

/// Runs a read-then-write `op` again (a few times) when another writer changed what it read
/// meanwhile: a session signed in or out, the upkeep purging one, a racing rotation.
fn again_if_stale(mut op: impl FnMut() -> Result<(), AccountError>) -> Result<(), AccountError> {
    let mut attempt = 1;
    loop {
        match op() {
            Err(AccountError::Store(StoreError::Stale(_))) if attempt < 5 => attempt += 1,
            other => return other,
        }
    }
}

/// The deletions of the Console sessions signed in with the account's auth tokens (those
/// signed in with an API key live under the key and end with it).
fn token_sessions_ended(store: &dyn Metadata, account_sid: &str) -> Result<Vec<Write>, StoreError> {
    let sessions = store.list(&ListQuery::children(
        Kind::ConsoleSession,
        account_sid,
        account_sid,
    ))?;
    Ok(sessions.into_iter().map(|r| Write::Delete(r.sid)).collect())
}

/// Checks HTTP Basic credentials: an Account SID with its primary or secondary auth token, or
/// an API key SID with its secret. Returns the Account SID they grant, or None.
pub fn authenticate(
    store: &dyn Metadata,
    username: &str,
    password: &str,
) -> Result<Option<String>, StoreError> {
    if let Some(sid) = Prefix::Account.parse(username) {
        let Some(rec) = store.get(&sid)? else {
            return Ok(None);
        };
        if rec.kind != Kind::Account {
            return Ok(None);
        }
        let data: AccountData = rec.decode()?;
        return Ok(either_token(&data, |t| ct_eq(t, password)).then_some(rec.sid));
    }
    if let Some(sid) = Prefix::ApiKey.parse(username) {
        let Some(rec) = store.get(&sid)? else {
            return Ok(None);
        };
        if rec.kind != Kind::ApiKey {
            return Ok(None);
        }
        let data: ApiKeyData = rec.decode()?;
        let ok = ct_eq(&data.secret_sha256, &sha256_hex(password));
        return Ok(ok.then_some(rec.account_sid));
    }
    Ok(None)
}

/// Whether `matches` accepts the Account's primary or its secondary token. Both are always
/// tried, so timing does not tell which one matched.
fn either_token(data: &AccountData, matches: impl Fn(&str) -> bool) -> bool {
    let primary = matches(&data.auth_token);
    let secondary = data.secondary_auth_token.as_deref().is_some_and(&matches);
    // `|`, not `||`: no short cut. (`^` would differ only if both tokens were the same, and
    // each is 32 random hex digits.)
    primary | secondary
}

/// Whether the auth token whose sha256 is `token_sha256` still works for the Account, as its
/// primary or its secondary token. A Console session signed in with a token lasts only as
/// long as that token does. Rotating deletes such sessions too. But a sign-in that commits
/// after the rotation has listed them, and before it writes, would otherwise outlive it; so
/// would one signed in with a secondary token that is then replaced.
pub fn token_still_works(
    store: &dyn Metadata,
    account_sid: &str,
    token_sha256: &str,
) -> Result<bool, StoreError> {
    let Some(rec) = store.get(account_sid)? else {
        return Ok(false);
    };
    if rec.kind != Kind::Account {
        return Ok(false);
    }
    let data: AccountData = rec.decode()?;
    Ok(either_token(&data, |t| ct_eq(&sha256_hex(t), token_sha256)))
}

/// How many API keys an account has (for `account list`).
pub fn key_count(store: &dyn Metadata, account_sid: &str) -> Result<usize, StoreError> {
    Ok(store
        .list(&ListQuery::children(Kind::ApiKey, account_sid, account_sid))?
        .len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[test]
    fn tokens_rotate_and_keys_authenticate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("m.db")).expect("open");
        let (sid, token) = create(&store, "a", None, None).expect("create");
        assert_eq!(
            authenticate(&store, &sid, &token).expect("auth"),
            Some(sid.clone())
        );
        assert_eq!(authenticate(&store, &sid, "wrong").expect("auth"), None);

        let second = create_secondary(&store, &sid).expect("secondary");
        assert!(authenticate(&store, &sid, &token).expect("auth").is_some());
        assert!(authenticate(&store, &sid, &second).expect("auth").is_some());
        promote_secondary(&store, &sid).expect("promote");
        assert!(authenticate(&store, &sid, &token).expect("auth").is_none());
        assert!(authenticate(&store, &sid, &second).expect("auth").is_some());
        assert!(matches!(
            remove_secondary(&store, &sid),
            Err(AccountError::NoSecondary(_))
        ));

        let (key, secret) = create_key(&store, &sid, "k").expect("key");
        assert_eq!(
            authenticate(&store, &key, &secret).expect("auth"),
            Some(sid.clone())
        );
        assert_eq!(authenticate(&store, &key, &token).expect("auth"), None);
        assert_eq!(key_count(&store, &sid).expect("count"), 1);
        delete_key(&store, &sid, &key).expect("delete");
        assert_eq!(authenticate(&store, &key, &secret).expect("auth"), None);
    }

    #[test]
    fn a_token_still_works_while_it_is_the_primary_or_the_secondary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("m.db")).expect("open");
        let (sid, first) = create(&store, "a", None, None).expect("create");
        let (other, other_token) = create(&store, "b", None, None).expect("create");
        let works = |account: &str, token: &str| {
            token_still_works(&store, account, &sha256_hex(token)).expect("read")
        };
        assert!(works(&sid, &first));
        assert!(!works(&sid, "wrong"));
        // A fingerprint, not the token itself.
        assert!(!token_still_works(&store, &sid, &first).expect("read"));
        // Another Account's token, an unknown Account, something not an Account.
        assert!(!works(&sid, &other_token));
        assert!(works(&other, &other_token));
        assert!(!works("AC00000000000000000000000000000000", &first));
        let (key, secret) = create_key(&store, &sid, "k").expect("key");
        assert!(!works(&key, &secret));

        let second = create_secondary(&store, &sid).expect("secondary");
        assert!(works(&sid, &first) && works(&sid, &second));
        // Replaced: the old secondary no longer works, the primary does.
        let third = create_secondary(&store, &sid).expect("secondary again");
        assert!(!works(&sid, &second));
        assert!(works(&sid, &first) && works(&sid, &third));
        promote_secondary(&store, &sid).expect("promote");
        assert!(!works(&sid, &first));
        assert!(works(&sid, &third));
        let fourth = create_secondary(&store, &sid).expect("secondary");
        remove_secondary(&store, &sid).expect("remove");
        assert!(!works(&sid, &fourth));
        assert!(works(&sid, &third));
    }

    #[test]
    fn bootstrap_creates_once_or_takes_fixed_credentials() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("m.db")).expect("open");
        let first = bootstrap(&store, None).expect("bootstrap");
        assert!(first.is_some());
        assert!(bootstrap(&store, None).expect("again").is_none());

        let fixed = ("AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123");
        assert!(bootstrap(&store, Some(fixed)).expect("fixed").is_none());
        assert!(authenticate(&store, fixed.0, fixed.1)
            .expect("auth")
            .is_some());
        let changed = ("AC0123456789abcdef0123456789abcdef", "fedcba9876543210fedc");
        bootstrap(&store, Some(changed)).expect("token changed");
        assert!(authenticate(&store, fixed.0, fixed.1)
            .expect("auth")
            .is_none());
        assert!(authenticate(&store, changed.0, changed.1)
            .expect("auth")
            .is_some());
    }
}
