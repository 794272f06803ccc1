/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Error codes: core uses the public enum so no translation is ever needed. */
#ifndef TLSQ_CORE_ERR_H
#define TLSQ_CORE_ERR_H

#include "../api/tlsq.h"

#endif
