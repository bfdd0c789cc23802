/* chat_msg.c: placeholder until the module lands */
