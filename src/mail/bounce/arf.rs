//! Abuse feedback reports (ARF, RFC 5965): every feedback type but
//! `not-spam` is a complaint.

use super::{address_field, field, field_groups, Kind, Report};

/// Reads the `message/feedback-report` part into `report`.
pub(super) fn read(part: &mail_parser::MessagePart<'_>, report: &mut Report) {
    let text = String::from_utf8_lossy(part.contents());
    let fields: Vec<(String, String)> = field_groups(&text).into_iter().flatten().collect();
    let feedback_type = field(&fields, "feedback-type")
        .unwrap_or("abuse")
        .to_ascii_lowercase();
    for name in ["original-rcpt-to", "removal-recipient"] {
        for (_, v) in fields.iter().filter(|(n, _)| n == name) {
            report.recipients.push(address_field(v));
        }
    }
    report.format = "ARF (RFC 5965)";
    report.kind = if feedback_type == "not-spam" {
        Kind::Ignored {
            why: "a not-spam feedback report".into(),
        }
    } else {
        Kind::Complaint { feedback_type }
    };
}
