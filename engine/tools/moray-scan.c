/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
int main(void)
{
	fputs("moray-scan: not built yet\n", stderr);
	return 2;
}
