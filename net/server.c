/* server.c: placeholder until the module lands */
