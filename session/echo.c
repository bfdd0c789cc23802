/* echo.c: placeholder until the module lands */
