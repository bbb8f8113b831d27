/** A VM's host file root and its limits, from the VM definition. */
export interface FileRootConfig {
  root: string;
  readOnly: boolean;
  /** Total bytes of regular files the VM may keep in its root. */
  quotaBytes: number;
  maxFileBytes: number;
  /**
   * Entries (files, directories and anything else, temp files aside) the VM may keep beneath its root: the
   * byte quota alone lets a guest create any number of empty files and directories.
   */
  maxEntries: number;
  maxOpenFiles: number;
  /** Permission bits of files and directories the guest creates (setuid/setgid/sticky never). */
  fileMode: number;
  dirMode: number;
  /** Keep the execute bits the guest asks for; off: created files are never executable. */
  allowExecutable: boolean;
  /**
   * Serve regular files with more than one hard link (off: HARD_LINKED for get, put over and remove). A
   * link placed on the host would otherwise let the guest read a file from outside its root, and removing
   * it would credit the quota with bytes that stay on disk.
   */
  allowHardLinks: boolean;
  /** Let the guest create names with control characters, newlines or a leading '-' (off: UNSAFE_NAME). */
  allowUnsafeNames: boolean;
  /** Owner of created files; default: the daemon's user. */
  owner?: { uid: number; gid: number };
}

export const DEFAULT_FILE_LIMITS = {
  quotaBytes: 1024 * 1024 * 1024,
  maxFileBytes: 1024 * 1024 * 1024,
  maxEntries: 100_000,
  maxOpenFiles: 16,
  fileMode: 0o644,
  dirMode: 0o755,
  allowExecutable: false,
  allowUnsafeNames: false,
  allowHardLinks: false,
} as const;
