#include "editline_shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <editline/readline.h>

static sparc_candidates_fn candidates_fn = NULL;
static char *candidates = NULL;     // current candidate list, NUL-separated
static const char *next_candidate = NULL;

// rl_completion_matches calls this with state 0 first, then 1, 2, … until NULL.
static char *generate(const char *text, int state) {
    (void)text;
    if (state == 0) next_candidate = candidates;
    if (next_candidate == NULL || *next_candidate == '\0') return NULL;
    char *out = strdup(next_candidate);
    next_candidate += strlen(next_candidate) + 1;
    return out;
}

static char **attempt_completion(const char *text, int start, int end) {
    rl_attempted_completion_over = 1;  // never fall back to file names
    free(candidates);
    candidates = candidates_fn ? candidates_fn(rl_line_buffer, start, end) : NULL;
    if (candidates == NULL) return NULL;
    return rl_completion_matches(text, generate);
}

void sparc_editline_init(const char *name, sparc_candidates_fn fn) {
    static char breaks[] = " \t\n()[]{},+-*/%@=<>|&~\".;";
    rl_readline_name = name;
    candidates_fn = fn;
    rl_attempted_completion_function = attempt_completion;
    rl_completer_word_break_characters = breaks;
    rl_basic_word_break_characters = breaks;
    stifle_history(5000);
}

char *sparc_editline_read(const char *prompt) { return readline(prompt); }
void sparc_editline_add_history(const char *line) { add_history(line); }
int sparc_editline_read_history(const char *path) { return read_history(path); }
int sparc_editline_write_history(const char *path) { return write_history(path); }
