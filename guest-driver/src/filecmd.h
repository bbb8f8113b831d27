/* filecmd: the `file` commands (get, put, ls, stat, mkdir, rm): command line, then the work on a channel
 * in FILE mode; ls and stat print text or JSON. */
#ifndef VG_FILECMD_H
#define VG_FILECMD_H

/* argv[1] is "file". Returns the process exit code. */
int filecmd_main(int argc, char **argv);

#endif
