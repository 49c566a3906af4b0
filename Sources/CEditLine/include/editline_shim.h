// A small C layer over libedit's readline interface. It owns libedit's C globals
// (completion hooks, word-break characters) so the Swift side touches none of them and
// Swift 6's strict concurrency checking stays on.
#ifndef SPARC_EDITLINE_SHIM_H
#define SPARC_EDITLINE_SHIM_H

/// Returns the completion candidates for the word that starts at `start` in `line`,
/// as a malloc'd buffer of NUL-terminated strings ended by an empty string (or NULL).
typedef char *(*sparc_candidates_fn)(const char *line, int start, int end);

/// Sets up line editing: the program name, tab completion through `candidates`.
void sparc_editline_init(const char *name, sparc_candidates_fn candidates);

/// Reads one line with editing and history; returns a malloc'd string (without the
/// newline) or NULL at end of input or when the read was interrupted.
char *sparc_editline_read(const char *prompt);

void sparc_editline_add_history(const char *line);
int sparc_editline_read_history(const char *path);
int sparc_editline_write_history(const char *path);

#endif
