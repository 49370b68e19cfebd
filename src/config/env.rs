//! `DIGEST_<KEY>` environment variables over the file's keys.

use super::{describe, Config, ConfigError};

/// The names of `Config`'s keys, as serde knows them (so that no list of
/// keys is kept by hand beside the struct).
fn keys() -> &'static [&'static str] {
    use serde::de::{self, Deserializer, Visitor};
    struct Fields(std::cell::Cell<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names read")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<T: std::fmt::Display>(_: T) -> Stop {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &Fields {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let fields = Fields(std::cell::Cell::new(&[]));
        let _ = <Config as serde::Deserialize>::deserialize(&fields);
        fields.0.get()
    })
}

/// Applies `DIGEST_<KEY>` variables to the top-level keys. The value is read
/// in the type of the key's default: lists are comma-separated, tables are
/// inline TOML tables, numbers and booleans are TOML scalars, strings are
/// taken as they are.
pub(super) fn overlay(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("DIGEST_"))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        let key = var["DIGEST_".len()..].to_ascii_lowercase();
        let string = toml::Value::String(String::new());
        let default = match defaults.get(&key) {
            Some(d) => d,
            // A key unset by default (an `Option`): its value is a string.
            None if keys().contains(&key.as_str()) => &string,
            // Not a key (DIGEST_SMTP_PASSWORD, say): none of the config's.
            None => continue,
        };
        let bad = |message: String| ConfigError::Env {
            var: var.clone(),
            message,
        };
        let value = match default {
            toml::Value::String(_) => toml::Value::String(raw),
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.into()))
                    .collect(),
            ),
            _ => {
                let doc: toml::Table =
                    toml::from_str(&format!("v = {raw}")).map_err(|e| bad(describe(&e)))?;
                doc["v"].clone()
            }
        };
        match (table.get_mut(&key), value) {
            // A partial table (`{ redundancy = 0.6 }`) updates the file's table.
            (Some(toml::Value::Table(existing)), toml::Value::Table(update)) => {
                existing.extend(update)
            }
            (_, value) => {
                table.insert(key, value);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_keys_come_from_the_struct() {
        let keys = super::keys();
        for k in [
            "timezone",
            "smtp_url",
            "dkim_selector",
            "bounces_maildir",
            "extractive",
        ] {
            assert!(keys.contains(&k), "{k}");
        }
    }
}
