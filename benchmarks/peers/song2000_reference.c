// Independent reference for benchmarks/stdp_song2000.py: Song, Miller & Abbott 2000 in plain C (lazy trace
// decay, Poisson spike counts per step), used to check the figures brainsim reports. Build and run:
//   cc -O2 song2000_reference.c -o song -lm
//   ./song T_s tau_m E_L rate_hz g_max a_plus_over_gmax n_inh g_in seed init(0 uniform, 1 g_max) dt_ms
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <stdint.h>
static uint64_t s[2]={0x12345678abcdefULL,0x9876543210fedcbULL};
static inline uint64_t nx(void){uint64_t s1=s[0];const uint64_t s0=s[1];s[0]=s0;s1^=s1<<23;s[1]=s1^s0^(s1>>17)^(s0>>26);return s[1]+s0;}
static inline double u01(void){return (nx()>>11)*(1.0/9007199254740992.0);}
static int pois(double lam){double L=exp(-lam),p=1;int k=0;do{k++;p*=u01();}while(p>L);return k-1;}
int main(int argc,char**argv){
  // args: T_s taum El rate gmax aplus(frac gmax) n_inh g_in seed init(0 uniform,1 gmax) dt
  double T=atof(argv[1]), taum=atof(argv[2]), El=atof(argv[3]), rate=atof(argv[4]), gmax=atof(argv[5]), ap=atof(argv[6]);
  int ninh=atoi(argv[7]); double gin_w=atof(argv[8]); s[0]^=atoi(argv[9])*0x9E3779B97F4A7C15ULL; for(int i=0;i<20;i++)nx();
  int init=atoi(argv[10]); double dt=atof(argv[11]);
  int N=1000; double Vth=-54, Vr=-60, Ee=0, Ei=-70, te=5, ti=5, tp=20, tm=20;
  double Ap=ap*gmax, Am=1.05*Ap;
  double *w=malloc(N*sizeof(double)), *x=calloc(N,sizeof(double)), *tx=calloc(N,sizeof(double)); double y=0, ty=0;
  for(int i=0;i<N;i++) w[i]=init? gmax : u01()*gmax;
  double V=El, ge=0, gi=0; long nsteps=(long)(T*1000/dt+0.5); long nspk=0; long win=nsteps/10; long spk_first=0, spk_last=0;
  double lam_e=N*rate*dt/1000, lam_i=ninh*10.0*dt/1000, de=exp(-dt/te), di=exp(-dt/ti);
  int nrow=20; long seg=nsteps/nrow; long segspk=0;
  for(long t=0;t<nsteps;t++){
    double now=t*dt;
    double gt=1+ge+gi; double vinf=(El+ge*Ee+gi*Ei)/gt; V=vinf+(V-vinf)*exp(-dt*gt/taum);
    int post=0; if(V>Vth){V=Vr;post=1;nspk++;segspk++; if(t<win)spk_first++; if(t>=nsteps-win)spk_last++;}
    ge*=de; gi*=di; gi+=gin_w*pois(lam_i);
    int ne=pois(lam_e);
    double yv=y*exp(-(now-ty)/tm);
    for(int k=0;k<ne;k++){ int i=(int)(u01()*N); ge+=w[i]; w[i]-=Am*yv; if(w[i]<0)w[i]=0; x[i]=x[i]*exp(-(now-tx[i])/tp)+1; tx[i]=now; }
    if(post){ for(int i=0;i<N;i++){ w[i]+=Ap*x[i]*exp(-(now-tx[i])/tp); if(w[i]>gmax)w[i]=gmax; } y=yv+1; ty=now; }
    if((t+1)%seg==0){ int nb=0; for(int i=0;i<N;i++) if(w[i]<=0.1*gmax||w[i]>=0.9*gmax)nb++; fprintf(stderr,"t=%.0fs rate %.2f nearb %.3f\n",(t+1)*dt/1000,segspk/(seg*dt/1000),(double)nb/N); segspk=0; }
  }
  int nb=0; double mw=0; for(int i=0;i<N;i++){ if(w[i]<=0.1*gmax||w[i]>=0.9*gmax)nb++; mw+=w[i]; }
  int hist[10]={0}; for(int i=0;i<N;i++){int b=(int)(w[i]/gmax*10); if(b>9)b=9; hist[b]++;}
  printf("frac_near_bounds %.4f rate %.2f first %.2f last %.2f mean_w/gmax %.3f hist",(double)nb/N,nspk/T,spk_first/(T/10),spk_last/(T/10),mw/N/gmax);
  for(int b=0;b<10;b++)printf(" %d",hist[b]); printf("\n");
}
