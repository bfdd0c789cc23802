/* jsonw.c: placeholder until the module lands */
