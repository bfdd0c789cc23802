/* http_parser.c: placeholder until the module lands */
