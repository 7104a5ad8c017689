/* SPDX-License-Identifier: MIT (see LICENSE) */
/* unload.c: a thread records through a module, the module is unloaded
 * (lua_close unloads C modules), then the thread exits: a thread-exit
 * destructor left in the unloaded module would crash here. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
static int (*rec)(void);
static int go;
static void *thread(void *arg)
{
	(void)arg;
	rec();
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) ;
	return NULL; /* exits after the unload */
}
int main(int argc, char **argv)
{
	void *h = dlopen(argc > 1 ? argv[1] : "./unload_mod.so", RTLD_NOW);
	if (!h) { printf("dlopen: %s\n", dlerror()); return 1; }
	int (*open)(void) = (int (*)(void))dlsym(h, "mod_open");
	void (*close)(void) = (void (*)(void))dlsym(h, "mod_close");
	rec = (int (*)(void))dlsym(h, "mod_record");
	open();
	pthread_t t;
	pthread_create(&t, NULL, thread, NULL);
	for (volatile int i = 0; i < 10000000; i++) ;
	close();
	dlclose(h);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	printf("unload: the thread exited after the module's unload\n");
	return 0;
}
