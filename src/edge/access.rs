//! Who may fetch what: public → anyone; protected → a valid `X-Twilio-Signature` by the
//! owning account's primary or secondary auth token; private → nobody.
//!
//! The tokens are held in memory, read at start and again whenever the change feed reports an
//! Account or API key changed (feed.rs), so token rotation with `sigil account token …`
//! reaches every edge within a second without any lookup on the request path.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::accounts::AccountData;
use crate::manifest::Visibility;
use crate::signature::{is_valid, Payload, SigningKey, Url};
use crate::store::{Kind, Metadata, StoreError};

/// Every Account SID's signing keys (foldhash: the keys are the store's SIDs, not a client's),
/// numbered: a thread's [`Verified`] signatures hold for one numbered set of keys only.
#[derive(Default)]
struct Keys {
    generation: u64,
    by_account: HashMap<String, Vec<SigningKey>, foldhash::fast::RandomState>,
}

/// The number the next [`Keys`] gets (unique in the process, so across [`Tokens`] too; 0 is
/// no keys yet).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Signatures found valid lately, for requests that sign nothing besides their URL: one set
/// per thread (each of the edge's runtimes is one), so no lock on the request path.
///
/// Such a request repeats exactly: Twilio fetching a protected `<Play>` file or image signs the
/// same URL the same way on every call. A remembered verdict turns its next check into a hash
/// lookup instead of an HMAC per URL variant and token (as Envoy remembers verified JWTs).
/// Only valid verdicts are kept, each keyed by all it depends on: the account, the URL as
/// received and the signature as sent. New keys (a token rotated) forget them all; the set is
/// bounded and starts over when full.
struct Verified {
    generation: u64,
    /// foldhash (seeded per process): a client chooses what is looked up, but only requests
    /// with a valid signature are ever stored, so none can crowd a bucket.
    seen: HashSet<Box<[u8]>, foldhash::fast::RandomState>,
    /// The request's key, built here to spare an allocation per check.
    key: Vec<u8>,
}

/// Verdicts a thread remembers at most.
const VERIFIED_MAX: usize = 1024;
/// The longest key remembered (account, URL and signature); longer requests are checked every
/// time. Together: at most about 1 MiB per thread.
const VERIFIED_KEY_MAX: usize = 1024;

thread_local! {
    static VERIFIED: RefCell<Verified> = RefCell::new(Verified {
        generation: 0,
        seen: HashSet::default(),
        key: Vec::new(),
    });
}

impl Verified {
    /// Whether `check` holds for the request `pieces` name, asking it only when this thread
    /// has not found it valid with these keys before.
    fn remembered<const N: usize>(
        &mut self,
        generation: u64,
        pieces: [&str; N],
        check: impl FnOnce() -> bool,
    ) -> bool {
        if self.generation != generation {
            self.seen.clear();
            self.generation = generation;
        }
        // Each piece after its length: no two requests make the same key.
        self.key.clear();
        for piece in pieces {
            self.key
                .extend_from_slice(&(piece.len() as u64).to_le_bytes());
            self.key.extend_from_slice(piece.as_bytes());
        }
        if self.seen.contains(self.key.as_slice()) {
            return true;
        }
        let valid = check();
        if valid && self.key.len() <= VERIFIED_KEY_MAX {
            if self.seen.len() >= VERIFIED_MAX {
                self.seen.clear();
            }
            self.seen.insert(self.key.as_slice().into());
        }
        valid
    }
}

/// Auth tokens by Account SID.
#[derive(Default)]
pub struct Tokens {
    map: ArcSwap<Keys>,
    /// The same tokens as text, for the edge's route snapshot (writers only).
    text: std::sync::Mutex<HashMap<String, Vec<String>>>,
}

impl Tokens {
    /// Re-reads every account's tokens.
    pub fn refresh(&self, store: &dyn Metadata) -> Result<(), StoreError> {
        let mut text = HashMap::new();
        for rec in store.scan(Kind::Account)? {
            let data: AccountData = rec.decode()?;
            let mut tokens = vec![data.auth_token];
            tokens.extend(data.secondary_auth_token);
            text.insert(rec.sid, tokens);
        }
        self.replace(text);
        Ok(())
    }

    /// Puts these tokens (Account SID → primary, then secondary) in place of all others.
    pub fn replace(&self, text: HashMap<String, Vec<String>>) {
        let by_account = text
            .iter()
            .map(|(sid, tokens)| {
                (
                    sid.clone(),
                    tokens.iter().map(|t| SigningKey::new(t)).collect(),
                )
            })
            .collect();
        let map = Keys {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            by_account,
        };
        let mut held = self.text.lock().unwrap_or_else(|p| p.into_inner());
        self.map.store(Arc::new(map));
        *held = text;
    }

    /// The tokens as text (Account SID → primary, then secondary).
    pub fn export(&self) -> HashMap<String, Vec<String>> {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The primary auth token of `account_sid` (what a Function's `context.AUTH_TOKEN` is).
    pub fn primary(&self, account_sid: &str) -> Option<String> {
        let text = self.text.lock().unwrap_or_else(|p| p.into_inner());
        text.get(account_sid)?.first().cloned()
    }

    /// Checks a signature for `account_sid`.
    fn valid(
        &self,
        account_sid: &str,
        url: &Url<'_>,
        payload: Payload<'_>,
        signature: &str,
    ) -> bool {
        let keys = self.map.load();
        let Some(tokens) = keys.by_account.get(account_sid) else {
            return false;
        };
        let check = || is_valid(tokens, url, payload, signature);
        match payload {
            Payload::Form([]) => {
                let [scheme, authority, tail] = url.as_received();
                VERIFIED.with_borrow_mut(|verified| {
                    verified.remembered(
                        keys.generation,
                        [account_sid, scheme, authority, tail, signature],
                        check,
                    )
                })
            }
            _ => check(),
        }
    }
}

/// The access decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Serve it.
    Allowed,
    /// 403: private.
    Private,
    /// 403: protected, and the signature is missing.
    MissingSignature,
    /// 403: protected, and the signature is wrong.
    BadSignature,
}

/// What a protected request offers as proof of Twilio's signature (borrowing the request).
pub struct Proof<'a> {
    /// The URL as the client asked for it (scheme, host as sent, raw path and query); `None`
    /// when those make no absolute URL, which no signature matches.
    pub url: Option<Url<'a>>,
    /// What was signed besides it.
    pub payload: OwnedPayload,
    /// The `X-Twilio-Signature` header, if any.
    pub signature: Option<&'a HeaderValue>,
}

/// An owned [`Payload`].
pub enum OwnedPayload {
    /// Form parameters (none for a GET).
    Form(Vec<(String, String)>),
    /// A non-form body, checked through `bodySHA256`.
    Body(bytes::Bytes),
}

/// Decides access to an asset of `account_sid` with `visibility`; `proof` matters only for
/// protected assets (callers build it, and read the body, only then).
pub fn decide(
    tokens: &Tokens,
    account_sid: &str,
    visibility: Visibility,
    proof: Option<&Proof<'_>>,
) -> Access {
    match visibility {
        Visibility::Public => Access::Allowed,
        Visibility::Private => Access::Private,
        Visibility::Protected => {
            let Some((p, signature)) = proof.and_then(|p| Some((p, p.signature?.to_str().ok()?)))
            else {
                return Access::MissingSignature;
            };
            let Some(url) = &p.url else {
                return Access::BadSignature;
            };
            let payload = match &p.payload {
                OwnedPayload::Form(params) => Payload::Form(params),
                OwnedPayload::Body(body) => Payload::Body(body),
            };
            if tokens.valid(account_sid, url, payload, signature) {
                Access::Allowed
            } else {
                Access::BadSignature
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header value of `token`'s signature of a GET of `url`.
    fn signed(token: &str, url: &str) -> HeaderValue {
        let signed = crate::signature::signed_string(url, &[]);
        HeaderValue::from_str(&crate::signature::sign(token, &signed)).expect("base64")
    }

    fn proof<'a>(url: &'a str, signature: &'a HeaderValue) -> Proof<'a> {
        Proof {
            url: Url::parse(url),
            payload: OwnedPayload::Form(Vec::new()),
            signature: Some(signature),
        }
    }

    #[test]
    fn tokens_are_read_from_the_store_and_exported_as_text() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::SqliteStore::open(&dir.path().join("m.db")).expect("store");
        let (sid, token) = crate::accounts::create(&store, "t", None, None).expect("account");
        let tokens = Tokens::default();
        tokens.refresh(&store).expect("refresh");
        assert_eq!(
            tokens.export(),
            HashMap::from([(sid.clone(), vec![token.clone()])])
        );
        // The primary token is what a Function's context.AUTH_TOKEN is.
        assert_eq!(tokens.primary(&sid), Some(token.clone()));
        assert_eq!(tokens.primary("AC9"), None);
        let header = signed(&token, "https://a.localhost/x");
        let signed = proof("https://a.localhost/x", &header);
        let check = |tokens: &Tokens| decide(tokens, &sid, Visibility::Protected, Some(&signed));
        assert_eq!(check(&tokens), Access::Allowed);
        // Replaced whole: what is not given is gone.
        tokens.replace(HashMap::from([("AC2".to_owned(), vec!["x".to_owned()])]));
        assert_eq!(
            tokens.export(),
            HashMap::from([("AC2".to_owned(), vec!["x".to_owned()])])
        );
        assert_eq!(check(&tokens), Access::BadSignature);
        tokens.replace(HashMap::from([(
            "AC3".to_owned(),
            vec!["first".to_owned(), "second".to_owned()],
        )]));
        assert_eq!(tokens.primary("AC3").as_deref(), Some("first"));
    }

    /// How many verdicts this thread remembers.
    fn remembered() -> usize {
        VERIFIED.with_borrow(|v| v.seen.len())
    }

    /// A valid signature is remembered, and holds again only for the same keys, account, URL
    /// and signature; nothing invalid, nothing with form parameters and nothing too long is
    /// remembered; the memory is bounded.
    #[test]
    fn remembered_verdicts() {
        let tokens = Tokens::default();
        let set = |one: &str| {
            tokens.replace(HashMap::from([
                ("AC1".to_owned(), vec![one.to_owned()]),
                ("AC2".to_owned(), vec!["two".to_owned()]),
            ]))
        };
        set("one");
        let check = |account: &str, proof: &Proof<'_>| {
            decide(&tokens, account, Visibility::Protected, Some(proof))
        };
        let url = "https://a.localhost/x";
        let (one, wrong) = (signed("one", url), signed("wrong", url));
        assert_eq!(remembered(), 0);
        assert_eq!(check("AC1", &proof(url, &one)), Access::Allowed);
        assert_eq!(remembered(), 1);
        assert_eq!(check("AC1", &proof(url, &one)), Access::Allowed);
        // Another signature, account or URL is checked, and nothing invalid is remembered.
        assert_eq!(check("AC1", &proof(url, &wrong)), Access::BadSignature);
        assert_eq!(check("AC2", &proof(url, &one)), Access::BadSignature);
        assert_eq!(
            check("AC1", &proof("https://a.localhost/y", &one)),
            Access::BadSignature
        );
        assert_eq!(
            check("AC1", &proof("http://a.localhost/x", &one)),
            Access::BadSignature
        );
        assert_eq!(remembered(), 1);
        // A rotated token: what was valid with the old one is not any more.
        set("new");
        assert_eq!(check("AC1", &proof(url, &one)), Access::BadSignature);
        assert_eq!(remembered(), 0);
        let new = signed("new", url);
        assert_eq!(check("AC1", &proof(url, &new)), Access::Allowed);
        assert_eq!(remembered(), 1);
        // A form POST is checked every time.
        let params = vec![("To".to_owned(), "+1".to_owned())];
        let sig = crate::signature::sign("new", &crate::signature::signed_string(url, &params));
        let sig = HeaderValue::from_str(&sig).expect("base64");
        let post = Proof {
            payload: OwnedPayload::Form(params),
            ..proof(url, &sig)
        };
        assert_eq!(check("AC1", &post), Access::Allowed);
        assert_eq!(remembered(), 1);
        // The longest key remembered, then one byte longer. A key is each of account, scheme,
        // authority, rest and signature after its 8-byte length.
        let fixed = 5 * 8 + "AC1".len() + "https".len() + "a.localhost".len() + new.len();
        for extra in [0, 1] {
            let tail = "/".repeat(VERIFIED_KEY_MAX - fixed + extra);
            let long = format!("https://a.localhost{tail}");
            assert_eq!(
                check("AC1", &proof(&long, &signed("new", &long))),
                Access::Allowed
            );
            assert_eq!(remembered(), 2, "{extra}");
        }
        // Full, it starts over.
        for i in remembered()..VERIFIED_MAX {
            let url = format!("https://a.localhost/{i}");
            assert_eq!(
                check("AC1", &proof(&url, &signed("new", &url))),
                Access::Allowed
            );
        }
        assert_eq!(remembered(), VERIFIED_MAX);
        let url = "https://a.localhost/one-more";
        assert_eq!(
            check("AC1", &proof(url, &signed("new", url))),
            Access::Allowed
        );
        assert_eq!(remembered(), 1);
    }

    /// Every visibility against every kind of proof: a valid signature opens only what is
    /// protected and owned by the account whose token made it.
    #[test]
    fn decisions() {
        let tokens = Tokens::default();
        tokens.replace(HashMap::from([
            ("AC1".to_owned(), vec!["one".to_owned()]),
            ("AC2".to_owned(), vec!["two".to_owned(), "two-b".to_owned()]),
        ]));
        let url = "https://a.localhost/x";
        let [one, two, two_b, wrong, empty] =
            ["one", "two", "two-b", "wrong", ""].map(|t| signed(t, url));
        let none = Proof {
            signature: None,
            ..proof(url, &one)
        };
        // The right signature, but the request made no absolute URL.
        let no_url = Proof {
            url: None,
            ..proof(url, &one)
        };
        use Access::{Allowed, BadSignature, MissingSignature};
        use Visibility::{Protected, Public};
        for (account, visibility, proof, want) in [
            ("AC1", Public, None, Allowed),
            ("AC1", Public, Some(proof(url, &wrong)), Allowed),
            ("AC1", Visibility::Private, None, Access::Private),
            // A valid signature never opens a private asset.
            (
                "AC1",
                Visibility::Private,
                Some(proof(url, &one)),
                Access::Private,
            ),
            ("AC1", Protected, None, MissingSignature),
            ("AC1", Protected, Some(none), MissingSignature),
            ("AC1", Protected, Some(no_url), BadSignature),
            ("AC1", Protected, Some(proof(url, &one)), Allowed),
            ("AC2", Protected, Some(proof(url, &two_b)), Allowed),
            ("AC1", Protected, Some(proof(url, &wrong)), BadSignature),
            // Another account's token, and an account with no tokens here.
            ("AC1", Protected, Some(proof(url, &two)), BadSignature),
            ("AC9", Protected, Some(proof(url, &one)), BadSignature),
            ("AC9", Protected, Some(proof(url, &empty)), BadSignature),
        ] {
            assert_eq!(
                decide(&tokens, account, visibility, proof.as_ref()),
                want,
                "{account} {visibility:?}"
            );
        }
    }
}
