/* debug: play a hostile guest, to check that the core survives garbage.
 *   debug raw [--mode none|file] --type T [--flags F] [--length L] [--id I] [--status S] [--payload HEX] [--wait-ms MS]
 *     writes ONE message into the g2c ring with exactly these header fields (a length larger than the slot
 *     included) and the payload bytes, rings the core, and prints what came back:
 *       response type=0x<type> id=<id> status=<n> (<words>)
 *       channel state=<STATE> last_status=<n> (<words>)
 *   debug poke-prod VALUE
 *     sets the g2c producer index to VALUE without writing a slot, rings, and prints the same lines.
 * Exit 0 when a response or a channel state change came back, 5 when nothing did within --wait-ms. */
#ifndef VG_DEBUG_H
#define VG_DEBUG_H

/* argv[1] is "debug". Returns the process exit code. */
int debug_main(int argc, char **argv);

#endif
