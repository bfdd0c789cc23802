/* static_files.c: placeholder until the module lands */
