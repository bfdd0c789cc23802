/* ws_handshake.c: placeholder until the module lands */
