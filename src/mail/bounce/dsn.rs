//! Delivery status notifications (RFC 3464): the first recipient's
//! `Action` and `Status` decide (`failed` 5.x.x: permanent; `failed` 4.x.x
//! or `delayed`: temporary; `delivered`, `relayed`, `expanded`: success).

use super::{address_field, field, field_groups, shorten, status_of, Kind, Report, Unread};

/// A recipient group's `Action`, lowercased, without comments.
fn action_of(group: &[(String, String)]) -> String {
    field(group, "action")
        .and_then(|a| a.split_whitespace().next())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Reads the `message/delivery-status` part into `report`.
pub(super) fn read(part: &mail_parser::MessagePart<'_>, report: &mut Report) -> Result<(), Unread> {
    report.format = "RFC 3464";
    let unusable = |why: String| Err(Unread::Unusable(why));
    let text = String::from_utf8_lossy(part.contents());
    let groups = field_groups(&text);
    let recipients: Vec<&Vec<(String, String)>> = groups
        .iter()
        .filter(|g| field(g, "action").is_some())
        .collect();
    let rank = |g: &&&Vec<(String, String)>| match action_of(g).as_str() {
        "failed" => 0,
        "delayed" => 1,
        "delivered" | "relayed" | "expanded" => 2,
        _ => 3,
    };
    let Some(group) = recipients.iter().min_by_key(rank) else {
        return unusable("a delivery status notification with no recipient's Action".into());
    };
    let action = action_of(group);
    for name in ["final-recipient", "original-recipient"] {
        if let Some(v) = field(group, name) {
            let a = address_field(v);
            if !report.recipients.contains(&a) {
                report.recipients.push(a);
            }
        }
    }
    // `Diagnostic-Code: smtp; 550 5.1.1 …`: the remote server's reply.
    let diagnostic =
        field(group, "diagnostic-code").map(|d| shorten(d.split_once(';').map_or(d, |(_, t)| t)));
    let status = field(group, "status")
        .and_then(|s| status_of(&format!(" {s} ")))
        .or_else(|| diagnostic.as_deref().and_then(status_of));
    report.diagnostic = diagnostic;
    report.status = status.clone();
    report.kind = match (action.as_str(), status.as_deref()) {
        ("failed", Some(s)) if s.starts_with('5') => Kind::Failed { permanent: true },
        ("failed", Some(s)) if s.starts_with('4') => Kind::Failed { permanent: false },
        ("failed", _) => {
            return unusable("a failure notification without a 4.x.x or 5.x.x status".into())
        }
        ("delayed", _) => Kind::Delayed,
        ("delivered" | "relayed" | "expanded", _) => Kind::Delivered,
        (other, _) => {
            return unusable(format!(
                "a delivery status notification with Action {other:?}"
            ))
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::bounce::field_groups;

    #[test]
    fn dsn_fields_group_and_unfold() {
        let g = field_groups(
            "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; A@Example.com\r\nAction: failed\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n  user unknown\r\n",
        );
        assert_eq!(g.len(), 2);
        assert_eq!(
            field(&g[1], "diagnostic-code"),
            Some("smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(
            address_field(field(&g[1], "final-recipient").unwrap()),
            "a@example.com"
        );
    }
}
