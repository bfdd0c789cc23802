/* decimal.c - decimal text to millionths, digit by digit. */
#include "base/decimal.h"

int64_t decimal_parse_micros(const char *s, size_t len)
{
    int64_t whole = 0, frac = 0;
    size_t i = 0, digits = 0, fdigits = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        whole = whole * 10 + (s[i] - '0');
        if (whole > 1000000000000ll)
            return -1;
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, fdigits++) {
            if (fdigits == 6)
                return -1;
            frac = frac * 10 + (s[i] - '0');
        }
        if (!fdigits)
            return -1;
    }
    if (i != len || !digits)
        return -1;
    for (; fdigits < 6; fdigits++)
        frac *= 10;
    return whole * 1000000 + frac;
}
