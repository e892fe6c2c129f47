//! The `image` platform: a printer's snapshot, from the URL the webhook
//! sends or from the JPEG bytes of a multipart webhook — only what the
//! printer actually sends gets an entity.
//!
//! Home Assistant takes an image either from `url_topic` (content type found
//! when downloading) or from `image_topic` with a `content_type`, never both
//! in one entity; [`ImageSource`] makes the mix unrepresentable.

use serde::Serialize;

use super::device::{Base, Look, Owner};
use super::{Discovered, Feed};
use crate::state::Field;

/// An MQTT image config.
#[derive(Debug, Serialize)]
struct Image<'a> {
    #[serde(flatten)]
    base: Base<'a>,
    #[serde(flatten)]
    source: ImageSource,
}

/// Where the image comes from.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ImageSource {
    /// A topic carrying an image URL, which Home Assistant downloads.
    Url { url_topic: String },
    /// A topic carrying the raw image bytes.
    Bytes {
        image_topic: String,
        content_type: &'static str,
    },
}

/// (look, topic, carries raw JPEG bytes).
const IMAGES: [(Look, Field, bool); 2] = [
    (Look::new("snapshot", "Snapshot"), Field::SnapshotUrl, false),
    (
        Look::new("snapshot_jpeg", "Snapshot (JPEG)"),
        Field::Snapshot,
        true,
    ),
];

/// A printer's images.
pub(super) fn printer(owner: &Owner<'_>) -> Vec<Discovered> {
    IMAGES
        .iter()
        .filter(|(_, _, jpeg)| {
            if *jpeg {
                owner.snapshot_jpeg
            } else {
                owner.snapshot_url
            }
        })
        .map(|(look, field, jpeg)| {
            let topic = owner.topic(Feed::Field(*field));
            let source = if *jpeg {
                ImageSource::Bytes {
                    image_topic: topic,
                    content_type: "image/jpeg",
                }
            } else {
                ImageSource::Url { url_topic: topic }
            };
            let image = Image {
                base: owner.base(look),
                source,
            };
            Discovered::new(look.object, &image)
        })
        .collect()
}
