//! The fsutil DiffCopy protocol that BuildKit uses to copy directory trees over a session:
//! the client *sends* build contexts ([`FileSyncSender`], behind `FileSync.DiffCopy`) and
//! *receives* `local` outputs ([`receive_into`], behind `FileSend.DiffCopy`). For one
//! platform of a multi-platform output, [`PlatformFolder`] gives the layout BuildKit's
//! `SubDirFS` gives its own ([`receive_into_platform_folder`] for `local`, [`TarHeader`] to
//! re-root `tar` entries byte for byte as fsutil's `WriteTar` writes them).
//!
//! The sender walks a directory the way tonistiigi/fsutil does — depth-first, siblings in
//! byte order of their names, a directory's parents emitted lazily before the first entry
//! that is included below them — and streams one STAT packet per entry, then an empty STAT.
//! The receiver answers with REQ packets for the regular files whose contents it needs; each
//! is answered with DATA chunks and an empty DATA. FIN from the receiver is answered with FIN.
//!
//! ## Why this module has its own `Stat` and `Packet`
//! `fsutil.types.Stat.path` and `.linkname` are proto3 `string` fields, but Unix file names
//! are bytes. Go strings are byte strings and BuildKit's vtproto marshaller copies them
//! without UTF-8 validation, so a Go client sends a non-UTF-8 name as its raw bytes. prost
//! maps `string` to `String` and refuses invalid UTF-8 when decoding. [`wire::Stat`] therefore
//! declares those two fields as `bytes`, which has the same wire encoding (length-delimited,
//! tag 1 and 7): valid names encode byte-for-byte like the generated type, and other names
//! travel unchanged as Go would send them. Whether the daemon accepts them is then the
//! daemon's decision, exactly as with buildx.

pub(crate) mod beneath;
mod platform_folder;
mod receive;
mod send;
mod stat;
pub mod tar_header;
mod walk;

pub use platform_folder::{FOLDER_MODE, InvalidFolderName, PlatformFolder};
pub use receive::{ReceiveError, ReceiveSummary, receive_into, receive_into_platform_folder};
pub use send::{FileSyncSender, SendError, SendSummary};
pub use stat::{go_file_mode, stat_from_metadata};
pub use tar_header::{TarHeader, TarHeaderError};
pub use walk::{FilterOptions, WalkEntry, WalkError, Walker, follow_links};

/// Go `os.FileMode` bits as they travel in `Stat.mode`.
pub mod mode {
    /// `os.ModeDir`.
    pub const DIR: u32 = 1 << 31;
    /// `os.ModeAppend`.
    pub const APPEND: u32 = 1 << 30;
    /// `os.ModeExclusive`.
    pub const EXCLUSIVE: u32 = 1 << 29;
    /// `os.ModeTemporary`.
    pub const TEMPORARY: u32 = 1 << 28;
    /// `os.ModeSymlink`.
    pub const SYMLINK: u32 = 1 << 27;
    /// `os.ModeDevice`.
    pub const DEVICE: u32 = 1 << 26;
    /// `os.ModeNamedPipe`.
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// `os.ModeSocket` (fsutil clears it before sending).
    pub const SOCKET: u32 = 1 << 24;
    /// `os.ModeSetuid`.
    pub const SETUID: u32 = 1 << 23;
    /// `os.ModeSetgid`.
    pub const SETGID: u32 = 1 << 22;
    /// `os.ModeCharDevice`.
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// `os.ModeSticky`.
    pub const STICKY: u32 = 1 << 20;
    /// `os.ModeIrregular`.
    pub const IRREGULAR: u32 = 1 << 19;
    /// `os.ModeType`: every bit that makes an entry something other than a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | IRREGULAR;
    /// `os.ModePerm`.
    pub const PERM: u32 = 0o777;

    /// Whether an entry with this mode has contents a receiver may request (fsutil's
    /// `fileCanRequestData`: regular files only).
    pub fn is_regular(mode: u32) -> bool {
        mode & TYPE == 0
    }
}

/// Wire messages of the `fsutil.types` package, with byte-string paths (see the module doc).
pub mod wire {
    use std::collections::BTreeMap;

    /// `fsutil.types.Stat`: one directory entry.
    #[derive(Clone, PartialEq, Eq, prost::Message)]
    pub struct Stat {
        /// Slash-separated path relative to the synced root (raw bytes; Go `string`).
        #[prost(bytes = "vec", tag = "1")]
        pub path: Vec<u8>,
        /// Go `os.FileMode` bits (see [`super::mode`]).
        #[prost(uint32, tag = "2")]
        pub mode: u32,
        /// Owner user ID.
        #[prost(uint32, tag = "3")]
        pub uid: u32,
        /// Owner group ID.
        #[prost(uint32, tag = "4")]
        pub gid: u32,
        /// Size in bytes for non-directories; a symlink's is the length of its target.
        #[prost(int64, tag = "5")]
        pub size: i64,
        /// Modification time in Unix nanoseconds.
        #[prost(int64, tag = "6")]
        pub mod_time: i64,
        /// Symlink target (raw bytes), or a hard link's first path.
        #[prost(bytes = "vec", tag = "7")]
        pub linkname: Vec<u8>,
        /// Device major number for device nodes.
        #[prost(int64, tag = "8")]
        pub devmajor: i64,
        /// Device minor number for device nodes.
        #[prost(int64, tag = "9")]
        pub devminor: i64,
        /// Extended attributes.
        #[prost(btree_map = "string, bytes", tag = "10")]
        pub xattrs: BTreeMap<String, Vec<u8>>,
    }

    /// `fsutil.types.Packet`: one message of the DiffCopy stream.
    #[derive(Clone, PartialEq, Eq, prost::Message)]
    pub struct Packet {
        /// A [`PacketType`] value.
        #[prost(enumeration = "PacketType", tag = "1")]
        pub r#type: i32,
        /// The entry of a STAT packet; `None` ends the list.
        #[prost(message, optional, tag = "2")]
        pub stat: Option<Stat>,
        /// The STAT index a REQ or DATA packet refers to.
        #[prost(uint32, tag = "3")]
        pub id: u32,
        /// File contents (DATA) or an error message (ERR).
        #[prost(bytes = "bytes", tag = "4")]
        pub data: bytes::Bytes,
    }

    /// `fsutil.types.Packet.PacketType`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum PacketType {
        /// An entry, or the end of the entry list.
        PacketStat = 0,
        /// A request for the contents of the file with the given ID.
        PacketReq = 1,
        /// File contents; empty data ends that file.
        PacketData = 2,
        /// The transfer is complete.
        PacketFin = 3,
        /// The peer failed; `data` holds its message.
        PacketErr = 4,
    }

    impl Packet {
        /// A packet of the given type with no payload.
        pub fn of(kind: PacketType) -> Self {
            Packet {
                r#type: kind as i32,
                ..Default::default()
            }
        }

        /// The packet type, or `None` for a value this client does not know.
        pub fn kind(&self) -> Option<PacketType> {
            PacketType::try_from(self.r#type).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::wire::{Packet, PacketType, Stat};

    #[test]
    fn stat_wire_layout_matches_fsutil_field_numbers() {
        let packet = Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(Stat {
                path: b"a".to_vec(),
                mode: 0o644,
                ..Default::default()
            }),
            id: 0,
            data: Default::default(),
        };
        // type=0 is the default and omitted; stat is field 2 holding path (field 1) and
        // mode (field 2, varint 0o644 = 420 = 0xa4 0x03).
        assert_eq!(
            packet.encode_to_vec(),
            [0x12, 0x06, 0x0a, 0x01, b'a', 0x10, 0xa4, 0x03]
        );
        let decoded = Packet::decode(&packet.encode_to_vec()[..]).expect("decodes");
        assert_eq!(decoded, packet);
    }

    #[test]
    fn non_utf8_path_round_trips() {
        let stat = Stat {
            path: b"dir/\xff".to_vec(),
            ..Default::default()
        };
        let decoded = Stat::decode(&stat.encode_to_vec()[..]).expect("decodes");
        assert_eq!(decoded.path, b"dir/\xff");
    }
}
