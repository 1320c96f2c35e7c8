/* SPDX-License-Identifier: BSD-3-Clause */
/* placeholder */
#include <criterion/criterion.h>
