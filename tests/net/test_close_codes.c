/* test_close_codes.c - ws_close_code_valid over the whole 16-bit range and at every boundary
 * (RFC 6455 section 7.4 and the IANA registry as the parser applies it: 1000-1003, 1007-1011,
 * 3000-4999 may be sent by a peer; 1004-1006, 1012-2999 and 5000+ may not). */
#include "net/ws_frame.h"
#include "tests/tap.h"

static const struct {
    uint16_t code;
    bool valid;
} boundaries[] = {
    {0, false},     {1, false},     {999, false},   {1000, true},  {1001, true},  {1002, true},
    {1003, true},   {1004, false},  {1005, false},  {1006, false}, {1007, true},  {1008, true},
    {1009, true},   {1010, true},   {1011, true},   {1012, false}, {1013, false}, {1014, false},
    {1015, false},  {1016, false},  {1100, false},  {2000, false}, {2999, false}, {3000, true},
    {3001, true},   {3999, true},   {4000, true},   {4999, true},  {5000, false}, {5001, false},
    {32768, false}, {65534, false}, {65535, false},
};

int main(void)
{
    size_t nvalid = 0;
    int bad = 0;

    for (size_t i = 0; i < sizeof(boundaries) / sizeof(boundaries[0]); i++)
        CHECKF(ws_close_code_valid(boundaries[i].code) == boundaries[i].valid, "code %u",
               boundaries[i].code);

    /* the whole range: the valid set is exactly the three intervals */
    for (uint32_t c = 0; c <= 65535; c++) {
        bool want =
            (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
        bool got = ws_close_code_valid((uint16_t)c);
        nvalid += got;
        bad += got != want;
    }
    CHECKF(bad == 0, "%d codes misjudged", bad);
    CHECKF(nvalid == 4 + 5 + 2000, "%zu valid codes", nvalid);
    return tap_done();
}
