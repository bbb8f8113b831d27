/* chat: the chat mode. A process claims one channel, puts it in MODE_CHAT and registers names on it
 * (register/listen), or sends, calls, lists and watches peers. The core pushes CHAT_DELIVER and
 * CHAT_PRESENCE on c2g (request id 0); large messages come through the receive area, the first half of the
 * channel's data slice (struct vmgmt_chat_rx first); the second half is this driver's (send buffers,
 * the reply buffer, peer lists). Every status prints in words (vmgmt_status_text). */
#ifndef VG_CHAT_H
#define VG_CHAT_H

/* vmgmt-guest chat <register|listen|peers|send|call> ...; returns the exit code. */
int chat_main(int argc, char **argv);

#endif
