/* session.c: placeholder until the module lands */
