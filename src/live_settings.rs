//! Settings that admins change in the console without a deploy: the risk rules' thresholds and
//! weights, and the catalog's prices. The config file gives their starting values; a saved
//! value, stored in the `live_settings` table (`db::live_settings`), overrides the file's
//! until it is reverted.
//!
//! Every instance holds one immutable `Snapshot` (settings plus everything derived from them:
//! the catalog and its formatted price rows) behind an `Arc`, so a request or an assessment
//! reads one consistent set however long it runs. The instance that saves reloads at once;
//! the others notice the new version within `console.settings_reload_seconds`, by comparing
//! the stored versions (a tiny table) with the ones their snapshot was built from.

use crate::clock::Millis;
use crate::config::{CatalogSettings, ConfigError, Dec, Settings, TierSettings};
use crate::db::live_settings::{self as stored, StoredSetting};
use crate::db::{audit, Db};
use crate::domain::pricing::PriceRow;
use crate::domain::{Catalog, Currency};
use crate::risk::RiskSettings;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// The stored name of the risk thresholds and weights (`RiskSettings` as JSON).
pub const RISK: &str = "risk";
/// The stored name of the catalog's prices (`Prices` as JSON).
pub const PRICES: &str = "prices";

/// The catalog's editable part: its graduated price tiers and the reference market rate per
/// coin that `unrealistic_offer` measures offers against (both in the base currency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub tiers: Vec<TierSettings>,
    pub reference_price_per_coin: Dec,
}

impl Prices {
    pub fn of(catalog: &CatalogSettings) -> Prices {
        Prices {
            tiers: catalog.tiers.clone(),
            reference_price_per_coin: catalog.reference_price_per_coin,
        }
    }
}

/// One consistent set of live settings and what is derived from them.
pub struct Snapshot {
    pub risk: RiskSettings,
    pub prices: Prices,
    pub catalog: Catalog,
    /// The catalog page's price rows per currency, formatted once per snapshot.
    pub price_rows: HashMap<Currency, Vec<PriceRow>>,
    /// The stored version of each name this snapshot was built from (absent: never saved).
    versions: BTreeMap<String, i64>,
    /// Names whose stored value is in force (not the config file's).
    overridden: Vec<String>,
}

impl Snapshot {
    /// The version a save of `name` must be based on: 0 when it was never saved.
    pub fn version_of(&self, name: &str) -> i64 {
        self.versions.get(name).copied().unwrap_or(0)
    }

    /// Whether `name` holds a value saved in the console rather than the config file's.
    pub fn is_overridden(&self, name: &str) -> bool {
        self.overridden.iter().any(|n| n == name)
    }
}

/// The current snapshot, shared by every handler and worker of this instance.
pub struct LiveSettings {
    file_risk: RiskSettings,
    file_catalog: CatalogSettings,
    /// The file's catalog, built (and so validated) once at start.
    file_built: Catalog,
    current: RwLock<Arc<Snapshot>>,
    /// One reload at a time, so a slow poll never puts back an older snapshot over the one a
    /// save just installed.
    reloading: tokio::sync::Mutex<()>,
}

impl LiveSettings {
    /// Builds the first snapshot from the config file and whatever is stored.
    pub async fn load(db: &Db, settings: &Settings) -> anyhow::Result<LiveSettings> {
        let catalog = settings.catalog.build()?;
        let first = Snapshot {
            price_rows: crate::domain::pricing::price_rows(&catalog),
            catalog,
            risk: settings.risk.clone(),
            prices: Prices::of(&settings.catalog),
            versions: BTreeMap::new(),
            overridden: Vec::new(),
        };
        let live = LiveSettings {
            file_built: first.catalog.clone(),
            file_risk: settings.risk.clone(),
            file_catalog: settings.catalog.clone(),
            current: RwLock::new(Arc::new(first)),
            reloading: tokio::sync::Mutex::new(()),
        };
        live.reload_if_changed(db).await?;
        Ok(live)
    }

    pub fn current(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc: the value is
        // still a whole snapshot.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The config file's risk settings (what "revert" goes back to).
    pub fn file_risk(&self) -> &RiskSettings {
        &self.file_risk
    }

    /// The config file's prices.
    fn file_prices(&self) -> Prices {
        Prices::of(&self.file_catalog)
    }

    /// The config file's value of a stored setting, as it would be stored.
    pub fn file_value(&self, name: &str) -> Option<serde_json::Value> {
        match name {
            RISK => serde_json::to_value(&self.file_risk).ok(),
            PRICES => serde_json::to_value(self.file_prices()).ok(),
            _ => None,
        }
    }

    /// The catalog the shop would sell from with `prices`, or why those prices are invalid.
    pub fn catalog_with(&self, prices: &Prices) -> Result<Catalog, ConfigError> {
        let mut settings = self.file_catalog.clone();
        settings.tiers = prices.tiers.clone();
        settings.reference_price_per_coin = prices.reference_price_per_coin;
        settings.build()
    }

    /// Reloads when any stored version differs from the snapshot's; returns whether it did.
    pub async fn reload_if_changed(&self, db: &Db) -> Result<bool, sqlx::Error> {
        let _one_at_a_time = self.reloading.lock().await;
        let rows = stored::all(db.pool()).await?;
        let versions: BTreeMap<String, i64> =
            rows.iter().map(|r| (r.name.clone(), r.version)).collect();
        if versions == self.current().versions {
            return Ok(false);
        }
        let snapshot = self.build(rows);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        Ok(true)
    }

    /// A snapshot from stored rows over the file's values. A stored value this version cannot
    /// read (written by a newer release, say) is logged and the file's value used instead:
    /// the shop keeps selling with the settings it was deployed with.
    fn build(&self, rows: Vec<StoredSetting>) -> Snapshot {
        let mut risk = self.file_risk.clone();
        let mut prices = self.file_prices();
        let mut catalog = self.file_built.clone();
        let mut overridden = Vec::new();
        let mut versions = BTreeMap::new();
        for row in rows {
            versions.insert(row.name.clone(), row.version);
            let Some(value) = row.value else { continue };
            let used = match row.name.as_str() {
                RISK => serde_json::from_str::<RiskSettings>(&value)
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.validate().map(|_| r).map_err(|e| e.to_string()))
                    .map(|r| risk = r),
                PRICES => serde_json::from_str::<Prices>(&value)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        self.catalog_with(&p)
                            .map(|c| (p, c))
                            .map_err(|e| e.to_string())
                    })
                    .map(|(p, c)| (prices, catalog) = (p, c)),
                _ => Err("not a setting this version knows".to_owned()),
            };
            match used {
                Ok(()) => overridden.push(row.name),
                Err(e) => tracing::error!(
                    setting = %row.name,
                    version = row.version,
                    error = %e,
                    "ignoring a stored setting; the config file's value is used"
                ),
            }
        }
        tracing::info!(?versions, risk = ?risk, "live settings loaded");
        Snapshot {
            price_rows: crate::domain::pricing::price_rows(&catalog),
            catalog,
            risk,
            prices,
            versions,
            overridden,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Someone saved this setting after the form was loaded.
    #[error("the setting was changed by someone else since this page was loaded")]
    Stale,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A save: the new value (`None` reverts to the config file's), written with its audit entry
/// if the stored version is still `based_on`.
pub struct Save<'a> {
    pub name: &'a str,
    pub value: Option<serde_json::Value>,
    /// The config file's value: what a revert goes back to, and the old value in the audit
    /// entry while nothing is stored.
    pub file_value: serde_json::Value,
    pub based_on: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub client_ip: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Written as this version.
    Version(i64),
    /// The value in force already: nothing written.
    Unchanged,
}

/// Saves in one transaction with its audit entry, whose old value is read in that transaction
/// (never from an instance's snapshot, which may be a poll behind). The write is conditional
/// on the version, so of two admins saving from the same page, the second gets `Stale` on
/// either backend. The caller then reloads its snapshot (`LiveSettings::reload_if_changed`).
pub async fn save(db: &Db, s: Save<'_>, now: Millis) -> Result<Saved, SaveError> {
    let mut tx = db.begin().await?;
    let (stored_value, version) = match stored::get(&mut tx, s.name).await? {
        Some(row) => (row.value, row.version),
        None => (None, 0),
    };
    if version != s.based_on {
        return Err(SaveError::Stale);
    }
    let old = stored_value
        .as_deref()
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_else(|| s.file_value.clone());
    let new = s.value.clone().unwrap_or_else(|| s.file_value.clone());
    // Saving the value in force changes nothing; a revert still clears a stored value that
    // happens to equal the file's, so that later edits of the file apply.
    if old == new && (s.value.is_some() || stored_value.is_none()) {
        return Ok(Saved::Unchanged);
    }
    let text = s.value.as_ref().map(|v| v.to_string());
    // Versions start at 1, so 0 means never saved: the write inserts the first row.
    if !stored::write(&mut tx, s.name, text.as_deref(), version, s.actor, now).await? {
        return Err(SaveError::Stale);
    }
    let changes = changes(&old, &new).join("; ");
    let (old_text, new_text) = (old.to_string(), new.to_string());
    audit::record(
        &mut tx,
        audit::Entry {
            actor: s.actor,
            action: s.action,
            subject: s.name,
            detail: &changes,
            old_value: Some(&old_text),
            new_value: Some(&new_text),
            client_ip: Some(s.client_ip),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Saved::Version(version + 1))
}

/// A short fingerprint of a proposed value, carried by a page so that "save what you tested"
/// and "save anyway" apply to exactly the values that were tested or warned about.
pub fn digest<T: Serialize>(value: &T) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_string(value).unwrap_or_default();
    hex::encode(&Sha256::digest(json.as_bytes())[..12])
}

/// The differences between two JSON values as "path: old → new" lines, for the audit log's
/// summary (the full old and new values are stored beside it).
pub fn changes(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "—".into());
            format!("{k}: {} → {}", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&join(&(i + 1).to_string()), v, out)),
        serde_json::Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_each_changed_leaf() {
        let old =
            json!({"review_threshold": 65, "velocity": {"points": 30, "max_amount_24h": "1000"}});
        let new =
            json!({"review_threshold": 60, "velocity": {"points": 30, "max_amount_24h": "800"}});
        assert_eq!(
            changes(&old, &new),
            vec![
                "review_threshold: 65 → 60".to_owned(),
                "velocity.max_amount_24h: 1000 → 800".to_owned()
            ]
        );
        assert!(changes(&old, &old).is_empty());
    }

    #[test]
    fn changes_list_added_and_removed_tiers() {
        let old = json!({"tiers": [{"from_coins": 0}]});
        let new = json!({"tiers": [{"from_coins": 0}, {"from_coins": 1000}]});
        assert_eq!(changes(&old, &new), vec!["tiers.2.from_coins: — → 1000"]);
    }

    #[test]
    fn risk_and_prices_round_trip_through_json() {
        let risk = RiskSettings::default();
        let text = serde_json::to_string(&risk).unwrap();
        assert_eq!(serde_json::from_str::<RiskSettings>(&text).unwrap(), risk);
        let prices = Prices::of(&CatalogSettings::default());
        let text = serde_json::to_string(&prices).unwrap();
        assert_eq!(serde_json::from_str::<Prices>(&text).unwrap(), prices);
    }
}
