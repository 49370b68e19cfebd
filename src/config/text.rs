//! Keys whose TOML value is text parsed once, at load, into a type: the
//! time zone, the sender's mailbox, the approval deadline's time of day,
//! and which sentence encoder groups stories.

use std::fmt::Display;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Which sentence encoder groups stories by meaning (`embedder`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Embedder {
    /// The first encoder under `models`, if any.
    #[default]
    Auto,
    /// None: group by words only.
    None,
    /// This folder under `models`.
    Named(String),
}

impl Embedder {
    /// The folder asked for: `None` for the first one found.
    pub fn folder(&self) -> Option<&str> {
        match self {
            Embedder::Named(name) => Some(name),
            Embedder::Auto | Embedder::None => None,
        }
    }
}

impl FromStr for Embedder {
    type Err = String;

    fn from_str(s: &str) -> Result<Embedder, String> {
        let s = s.trim();
        let escapes = std::path::Path::new(s)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
        match s {
            "auto" => Ok(Embedder::Auto),
            "none" => Ok(Embedder::None),
            "" => Err("\"auto\", \"none\" or a folder under `models`".into()),
            _ if escapes => Err(format!(
                "{s:?}: \"auto\", \"none\" or a folder under `models` (no `..`, no absolute path)"
            )),
            name => Ok(Embedder::Named(name.to_owned())),
        }
    }
}

impl Display for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Embedder::Auto => f.write_str("auto"),
            Embedder::None => f.write_str("none"),
            Embedder::Named(name) => f.write_str(name),
        }
    }
}

impl Serialize for Embedder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Embedder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Embedder, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

fn parsed<'de, D, T>(d: D, what: impl Fn(&str, T::Err) -> String) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
{
    let text = String::deserialize(d)?;
    text.trim()
        .parse()
        .map_err(|e| de::Error::custom(what(&text, e)))
}

/// `timezone`: an IANA time zone name.
pub(super) mod time_zone {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(tz.name())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
        parsed(d, |text, _| {
            format!("unknown IANA time zone {text:?} (for example \"Europe/London\")")
        })
    }
}

/// `from`: a mailbox, `Name <address>`.
pub(super) mod mailbox {
    use super::*;
    use lettre::message::Mailbox;

    pub(crate) fn serialize<S: Serializer>(m: &Mailbox, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(m)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mailbox, D::Error> {
        parsed(d, |text, e: lettre::address::AddressError| {
            format!("{text:?} is not an address: {e}")
        })
    }
}

/// `approval_deadline`: a time of day, `HH:MM`.
pub(super) mod time_of_day {
    use super::*;
    use chrono::NaiveTime;

    pub(crate) fn serialize<S: Serializer>(t: &Option<NaiveTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&t.format("%H:%M")),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<NaiveTime>, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map(Some)
            .map_err(|_| {
                de::Error::custom(format!(
                    "{text:?} is not a time of day HH:MM (for example \"06:00\")"
                ))
            })
    }
}
