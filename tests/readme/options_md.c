/* Prints the option table as Markdown, from the core's own table
 * (wsg_option_describe). README.md holds this output between the
 * "options-table" markers; the readme_options test keeps them equal. */
#include <stdio.h>
#include <string.h>

#include <wsgate/wsgate.h>

static void cell(const char *s) {
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", stdout);
        else
            putchar(*s);
    }
}

int main(void) {
    puts("| option | type | default | range | what it does |");
    puts("|---|---|---|---|---|");
    for (size_t i = 0; i < wsg_option_count(); i++) {
        const char *f[5];
        for (int k = 0; k < 5; k++)
            if (wsg_option_describe(i, (wsg_option_field)(k + 1), &f[k]) != WSG_OK) return 1;
        if (*f[2])
            printf("| `%s` | %s | `%s` | ", f[0], f[1], f[2]);
        else
            printf("| `%s` | %s | (empty) | ", f[0], f[1]);
        if (*f[3]) {
            putchar('`');
            cell(f[3]);
            putchar('`');
        }
        fputs(" | ", stdout);
        cell(f[4]);
        puts(" |");
    }
    return 0;
}
