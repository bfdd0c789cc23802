/* utf8.c: placeholder until the module lands */
