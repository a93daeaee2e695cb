//! Who may fetch what: public → anyone; protected → a valid `X-Twilio-Signature` by the
//! owning account's primary or secondary auth token; private → nobody.
//!
//! The tokens are held in memory, read at start and again whenever the change feed reports an
//! Account or API key changed (feed.rs), so token rotation with `sigil account token …`
//! reaches every edge within a second without any lookup on the request path.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::accounts::AccountData;
use crate::manifest::Visibility;
use crate::signature::{is_valid, Payload, SigningKey};
use crate::store::{Kind, Metadata, StoreError};

/// An Account SID's signing keys (foldhash: the keys are the store's SIDs, not a client's).
type Keys = HashMap<String, Vec<SigningKey>, foldhash::fast::RandomState>;

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
        let map = text
            .iter()
            .map(|(sid, tokens)| {
                (
                    sid.clone(),
                    tokens.iter().map(|t| SigningKey::new(t)).collect(),
                )
            })
            .collect();
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
    fn valid(&self, account_sid: &str, url: &str, payload: Payload<'_>, signature: &str) -> bool {
        let map = self.map.load();
        let Some(tokens) = map.get(account_sid) else {
            return false;
        };
        is_valid(tokens, url, payload, signature)
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

/// What a protected request offers as proof of Twilio's signature.
pub struct Proof {
    /// The URL as the client asked for it (scheme, host as sent, raw path and query).
    pub url: String,
    /// What was signed besides it.
    pub payload: OwnedPayload,
    /// The `X-Twilio-Signature` header, if any (sharing the request's bytes).
    pub signature: Option<HeaderValue>,
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
    proof: Option<&Proof>,
) -> Access {
    match visibility {
        Visibility::Public => Access::Allowed,
        Visibility::Private => Access::Private,
        Visibility::Protected => {
            let Some((p, signature)) =
                proof.and_then(|p| Some((p, p.signature.as_ref()?.to_str().ok()?)))
            else {
                return Access::MissingSignature;
            };
            let payload = match &p.payload {
                OwnedPayload::Form(params) => Payload::Form(params),
                OwnedPayload::Body(body) => Payload::Body(body),
            };
            if tokens.valid(account_sid, &p.url, payload, signature) {
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

    fn proof(token: &str, url: &str) -> Proof {
        let signed = crate::signature::signed_string(url, &[]);
        Proof {
            url: url.to_owned(),
            payload: OwnedPayload::Form(Vec::new()),
            signature: Some(
                HeaderValue::from_str(&crate::signature::sign(token, &signed)).expect("base64"),
            ),
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
        let signed = proof(&token, "https://a.localhost/x");
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
        let none = Proof {
            url: url.to_owned(),
            payload: OwnedPayload::Form(Vec::new()),
            signature: None,
        };
        use Access::{Allowed, BadSignature, MissingSignature};
        use Visibility::{Protected, Public};
        for (account, visibility, proof, want) in [
            ("AC1", Public, None, Allowed),
            ("AC1", Public, Some(proof("wrong", url)), Allowed),
            ("AC1", Visibility::Private, None, Access::Private),
            // A valid signature never opens a private asset.
            (
                "AC1",
                Visibility::Private,
                Some(proof("one", url)),
                Access::Private,
            ),
            ("AC1", Protected, None, MissingSignature),
            ("AC1", Protected, Some(none), MissingSignature),
            ("AC1", Protected, Some(proof("one", url)), Allowed),
            ("AC2", Protected, Some(proof("two-b", url)), Allowed),
            ("AC1", Protected, Some(proof("wrong", url)), BadSignature),
            // Another account's token, and an account with no tokens here.
            ("AC1", Protected, Some(proof("two", url)), BadSignature),
            ("AC9", Protected, Some(proof("one", url)), BadSignature),
            ("AC9", Protected, Some(proof("", url)), BadSignature),
        ] {
            assert_eq!(
                decide(&tokens, account, visibility, proof.as_ref()),
                want,
                "{account} {visibility:?}"
            );
        }
    }
}
